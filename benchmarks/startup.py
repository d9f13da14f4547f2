"""Start-up cost of each stage script: a fresh Python importing the script's module (everything it
imports at the top, torch included), without running its main().

    python benchmarks/startup.py             # every stage, 5 tries each, median printed
    python benchmarks/startup.py --tries 9

`dvc repro` starts one process per stage, five per round, so at 40 rounds every second of
start-up costs over three minutes. Prints one JSON line per stage.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from measure import git_commit

REPO = Path(__file__).resolve().parent.parent
ROUND_STAGES = ("features", "intra_cluster", "intra_train", "inter_affinity", "inter_train", "evaluate")


def import_seconds(stage: str) -> float:
    code = f"import sys; sys.path[:0] = [{str(REPO / 'stages')!r}, {str(REPO)!r}]; import {stage}"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def timed_python() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=5)
    args = parser.parse_args()
    commit = git_commit(REPO)
    bare = statistics.median(timed_python() for _ in range(args.tries))
    common = {"date": date.today().isoformat(), "commit": commit,
              "machine": platform.processor() or platform.machine(), "python": platform.python_version()}
    print(json.dumps({"stage": "(bare python)", "median_s": round(bare, 3), **common}), flush=True)
    for stage in ROUND_STAGES:
        import_seconds(stage)  # warm the file cache and the bytecode cache
        seconds = statistics.median(import_seconds(stage) for _ in range(args.tries))
        print(json.dumps({"stage": stage, "median_s": round(seconds, 3), **common}), flush=True)


if __name__ == "__main__":
    main()
