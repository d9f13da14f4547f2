"""How long DVC's own bookkeeping takes with many rounds: builds a temporary copy of the project
with the tiny test configuration and N rounds, runs `dvc repro` once, then times `dvc status`
and a no-op `dvc repro` (nothing changed, so no stage runs).

    python benchmarks/dvc_overhead.py --rounds 40

Prints one JSON line; benchmarks/results/ holds recorded outputs.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from measure import git_commit  # noqa: E402
from tiny_repo import REPO, dvc_executable, make_tiny_repo, run  # noqa: E402


def timed(args: list, cwd: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    out = run(args, cwd, env)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3, help="timings of status / no-op repro to take")
    args = parser.parse_args()
    dvc = dvc_executable()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        env = make_tiny_repo(repo, rounds=args.rounds, every=5)
        stages = len(run([dvc, "stage", "list", "--all"], repo, env).strip().splitlines())
        first_repro, _ = timed([dvc, "repro"], repo, env)
        status = [timed([dvc, "status"], repo, env) for _ in range(args.repeats)]
        noop = [timed([dvc, "repro"], repo, env) for _ in range(args.repeats)]
        if any("changed" in out for _, out in status) or any("Running stage" in out for _, out in noop):
            raise SystemExit("the pipeline was not up to date after `dvc repro`; the timings would be wrong")
        commit = git_commit(REPO)
        print(json.dumps({
            "date": date.today().isoformat(), "commit": commit, "machine": platform.processor() or platform.machine(),
            "python": platform.python_version(), "rounds": args.rounds, "stages": stages,
            "first_repro_s": round(first_repro, 1),
            "status_s": [round(s, 2) for s, _ in status], "noop_repro_s": [round(s, 2) for s, _ in noop],
        }))


if __name__ == "__main__":
    main()
