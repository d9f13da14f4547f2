"""Every GPU measurement BENCHMARKS.md asks for, one after another, on a CUDA machine (no DVC needed):

    python benchmarks/gpu_all.py OUT_DIR                                        # every step, in order
    python benchmarks/gpu_all.py OUT_DIR --steps round_market1501 clustering_msmt17

Each step runs as its own process. The `graph_` steps run in a copy of the tree with
`benchmarks/cuda_graph.patch` applied (made once, under the system's temporary folder), so one
call measures the tree and the patch without touching the checkout; their JSON lines name the
commit as `<commit>-dirty-<hex>`. Its JSON lines go to OUT_DIR/results.jsonl with the step's
name added, and everything else it prints (the table, the log, a traceback) to OUT_DIR/log.txt,
so a machine that hands back only a few files still hands back everything. A failing step is
reported and the next one runs; the exit status is the number of failed steps.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from measure import git_commit  # noqa: E402

PYTHON = sys.executable
STEPS = {
    "cuda_tests": [PYTHON, "-m", "pytest", "-q", "tests/test_cuda_equivalence.py"],
    "round_market1501": [PYTHON, "benchmarks/round_speed.py", "--scale", "market1501"],
    "round_market1501_cold": ["env", "IICS_WARM=0", PYTHON, "benchmarks/round_speed.py", "--scale", "market1501"],
    "round_market1501_float32": [PYTHON, "benchmarks/round_speed.py", "--scale", "market1501",
                                 "--set", "precision=float32"],
    "clustering_market1501": [PYTHON, "benchmarks/clustering_speed.py", "--scale", "market1501"],
    "train_profile": [PYTHON, "benchmarks/train_profile.py"],
    "startup": [PYTHON, "benchmarks/startup.py", "--tries", "3"],
    "evaluation_market1501": [PYTHON, "benchmarks/evaluation_speed.py", "--scale", "market1501"],
    "evaluation_msmt17": [PYTHON, "benchmarks/evaluation_speed.py", "--scale", "msmt17"],
    "round_msmt17": [PYTHON, "benchmarks/round_speed.py", "--scale", "msmt17"],
    "clustering_msmt17": [PYTHON, "benchmarks/clustering_speed.py", "--scale", "msmt17"],
    "graph_cuda_tests": [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda_equivalence.py"],
    "graph_round_market1501": [PYTHON, "benchmarks/round_speed.py", "--scale", "market1501"],
}
GRAPH_PATCH = REPO / "benchmarks" / "cuda_graph.patch"
# What the patched copy leaves out: outputs of runs and environments, never code.
NOT_COPIED = {".venv", "runs", "dvc_plots", "prepared", "__pycache__", ".pytest_cache"}


def patched_tree(dest: Path) -> Path:
    """A copy of the repository at `dest` (made afresh) with GRAPH_PATCH applied by `git apply`;
    a CalledProcessError when the patch does not apply, an OSError when git is not installed."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(REPO, dest, symlinks=True,
                    ignore=lambda folder, names: [n for n in names if n in NOT_COPIED or (n == "cache" and folder.endswith(".dvc"))])
    subprocess.run(["git", "apply", str(GRAPH_PATCH)], cwd=dest, check=True, capture_output=True, text=True)
    return dest


def tag_json_lines(text: str, step: str) -> tuple[list[str], list[str]]:
    """(the JSON-object lines of ``text`` with ``"step"`` added first, every other non-empty line)."""
    rows, other = [], []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            rows.append(json.dumps({"step": step, **row}))
        elif line.strip():
            other.append(line)
    return rows, other


def run_step(step: str, command: list[str], out_dir: Path, cwd: Path = REPO) -> int:
    """Run one step from `cwd` (the repository root); append its JSON lines to results.jsonl and
    the rest of its output to log.txt. Returns its exit status."""
    with open(out_dir / "log.txt", "a") as log:
        log.write(f"== {step}: {' '.join(command)}\n")
        log.flush()
        start = time.perf_counter()
        env = {**os.environ, "IICS_PROGRESS": "0", "PYTHONUNBUFFERED": "1"}  # no progress bars in the log
        done = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        rows, other = tag_json_lines(done.stdout, step)
        log.writelines(line + "\n" for line in other)
        log.write(f"== {step}: exit {done.returncode} after {time.perf_counter() - start:.0f} s\n")
    with open(out_dir / "results.jsonl", "a") as results:
        results.writelines(row + "\n" for row in rows)
    return done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    gpu = "no GPU"
    if shutil.which("nvidia-smi"):
        gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
    with open(args.out_dir / "log.txt", "a") as log:
        log.write(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {git_commit(REPO)}, {gpu}\n")
    failed = 0
    patched = None
    for step in args.steps:
        cwd = REPO
        if step.startswith("graph_"):
            if patched is None:
                try:
                    patched = patched_tree(Path(tempfile.gettempdir()) / "iics-cuda-graph")
                except (subprocess.CalledProcessError, OSError) as error:  # OSError: no git, a copy that failed
                    reason = error.stderr if isinstance(error, subprocess.CalledProcessError) else error
                    with open(args.out_dir / "log.txt", "a") as log:
                        log.write(f"== {step}: {GRAPH_PATCH.name} does not apply: {reason}\n")
                    print(f"{step}: {GRAPH_PATCH.name} does not apply", flush=True)
                    failed += 1
                    continue
            cwd = patched
        status = run_step(step, STEPS[step], args.out_dir, cwd)
        print(f"{step}: exit {status}", flush=True)
        failed += status != 0
    sys.exit(failed)


if __name__ == "__main__":
    main()
