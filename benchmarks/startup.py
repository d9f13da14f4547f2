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

Then, per backbone and for six camera heads, the two ways a stage gets a network, timed in this
process (median of the tries after one untimed): `build_s`, building it with its random
initialisation (only `init` does that), and `load_s`, reading a saved one with
`iics.checkpoint.load_backbone` or `load_heads` (every other stage that runs a network), which
build it on the meta device so as not to pay the initialisation.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
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


def in_process_median(call, tries: int) -> float:
    """Median wall time of `call()` over `tries` calls, after one untimed call."""
    call()
    times = []
    for _ in range(tries):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def model_loading(tries: int, common: dict) -> None:
    """Print a JSON line per backbone: building it from scratch against loading a saved one."""
    import torch

    from iics.checkpoint import load_backbone, load_heads, save_backbone
    from iics.models import BACKBONES, build_backbone

    with tempfile.TemporaryDirectory() as folder:
        for name in BACKBONES:
            path = Path(folder) / f"{name}.pt"
            save_backbone(build_backbone(name), name, path)
            build = in_process_median(lambda: build_backbone(name), tries)
            load = in_process_median(lambda: load_backbone(path, name), tries)
            print(json.dumps({"backbone": name, "build_s": round(build, 3), "load_s": round(load, 3),
                              "megabytes": round(path.stat().st_size / 2**20, 1), **common}), flush=True)
        # The intra-camera heads inter_affinity loads beside ResNet-50: six cameras of about 500
        # pseudo-identities each, as at Market-1501 scale.
        path = Path(folder) / "heads.pt"
        save_backbone(build_backbone("resnet50_aibn"), "resnet50_aibn", path, heads=heads_of_market_size())
        build = in_process_median(heads_of_market_size, tries)
        load = in_process_median(lambda: load_heads(path, 2048), tries)
        print(json.dumps({"backbone": "6 heads, 2048 x 500", "build_s": round(build, 3), "load_s": round(load, 3),
                          **common}), flush=True)


def heads_of_market_size() -> list:
    from iics.models import ClassifierHead

    return [ClassifierHead(2048, 500) for _ in range(6)]


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
    model_loading(args.tries, common)


if __name__ == "__main__":
    main()
