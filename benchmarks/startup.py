"""Start-up cost of each stage script: a fresh Python importing the script's module (everything it
imports at the top, torch included), without running its main().

    python benchmarks/startup.py             # every stage, 5 tries each, median printed
    python benchmarks/startup.py --tries 9

`dvc repro` starts one process per stage, five per round, so at 40 rounds every second of
start-up costs over three minutes. Prints one JSON line per stage, after the floors no stage can
go below: bare Python, `import torch`, and where CUDA is available `import torch` plus creating
the CUDA context (the first tensor on the device), which every stage on a GPU pays before its
work.
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


def python_seconds(code: str) -> float:
    """Wall time of a fresh Python running `code`."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def import_code(stage: str) -> str:
    return f"import sys; sys.path[:0] = [{str(REPO / 'stages')!r}, {str(REPO)!r}]; import {stage}"


def median_seconds(code: str, tries: int) -> float:
    python_seconds(code)  # warm the file cache and the bytecode cache
    return statistics.median(python_seconds(code) for _ in range(tries))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=5)
    args = parser.parse_args()
    common = {"date": date.today().isoformat(), "commit": git_commit(REPO),
              "machine": platform.processor() or platform.machine(), "python": platform.python_version()}
    cuda = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                          capture_output=True, text=True, check=True).stdout.strip() == "True"
    rows = {**FLOORS, **(CUDA_FLOOR if cuda else {}), **{stage: import_code(stage) for stage in ROUND_STAGES}}
    for name, code in rows.items():
        print(json.dumps({"stage": name, "median_s": round(median_seconds(code, args.tries), 3), **common}), flush=True)


if __name__ == "__main__":
    main()
