"""Start-up cost of each stage script: a fresh Python starting the script up to the point where it
reads its arguments (`--help`: everything it imports at the top, torch included, then argparse),
run on its own and through stages/run.py with the warm process up, as dvc.yaml runs it.

    python benchmarks/startup.py             # every stage, 5 tries each, median printed
    python benchmarks/startup.py --tries 9

`dvc repro` starts one process per stage, five per round, so at 40 rounds every second of
start-up costs over three minutes. Prints one JSON line per stage (`cold_s`: `python
stages/<stage>.py --help`; `warm_s`: `python stages/run.py <stage> --help`, the warm process
started by an untimed first call), after the floors no stage run on its own can go below: bare
Python, `import torch`, and where CUDA is available `import torch` plus creating the CUDA
context (the first tensor on the device), which every stage on a GPU pays before its work, warm
or not.
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


FLOORS = {"(bare python)": "pass", "(import torch)": "import torch"}
CUDA_FLOOR = {"(import torch, CUDA context)": "import torch; torch.zeros(1, device='cuda'); torch.cuda.synchronize()"}


def command_seconds(command: list[str]) -> float:
    """Wall time of `command`, run from the repository root."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds


def median_seconds(command: list[str], tries: int) -> float:
    command_seconds(command)  # warm the file and bytecode caches (and start the warm process)
    return statistics.median(command_seconds(command) for _ in range(tries))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=5)
    args = parser.parse_args()
    common = {"date": date.today().isoformat(), "commit": git_commit(REPO),
              "machine": platform.processor() or platform.machine(), "python": platform.python_version()}
    cuda = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                          capture_output=True, text=True, check=True).stdout.strip() == "True"
    floors = {**FLOORS, **(CUDA_FLOOR if cuda else {})}
    for name, code in floors.items():
        seconds = median_seconds([sys.executable, "-c", code], args.tries)
        print(json.dumps({"stage": name, "median_s": round(seconds, 3), **common}), flush=True)
    for stage in ROUND_STAGES:
        cold = median_seconds([sys.executable, f"stages/{stage}.py", "--help"], args.tries)
        warm = median_seconds([sys.executable, "stages/run.py", stage, "--help"], args.tries)
        print(json.dumps({"stage": stage, "cold_s": round(cold, 3), "warm_s": round(warm, 3), **common}), flush=True)


if __name__ == "__main__":
    main()
