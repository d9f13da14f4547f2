"""What every stage script shares: reading params.yaml, the artifact layout, writing JSON."""
from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path

import numpy as np
import yaml

from iics.image_cache import load_image_cache
from iics.index import read_index

ROOT = Path(__file__).resolve().parent.parent
PARAMS = ROOT / "params.yaml"
RUNS = ROOT / "runs"
METRICS = ROOT / "metrics"


def _report_gpu_memory() -> None:
    """At exit, the peak GPU memory of a stage that used CUDA (read by benchmarks/round_speed.py)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB", file=sys.stderr)


atexit.register(_report_gpu_memory)


def load_params() -> dict:
    with open(PARAMS) as f:
        return yaml.safe_load(f)


def dataset_dir(params: dict) -> Path:
    return ROOT / "data" / params["dataset"]["name"]


def prepared_dir(params: dict) -> Path:
    return dataset_dir(params) / "prepared"


def load_index(params: dict) -> dict[str, np.ndarray]:
    """The prepared index.csv of the configured dataset (written by `extract`), one array per column."""
    return read_index(prepared_dir(params) / "index.csv")


def load_images(params: dict) -> np.ndarray:
    """The decoded uint8 image cache (N, H, W, 3), memory-mapped; rows match index.csv."""
    return load_image_cache(prepared_dir(params) / "images.npy")


def round_dir(round_id: str) -> Path:
    path = RUNS / round_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def round_metrics_dir(round_id: str) -> Path:
    path = METRICS / "rounds" / round_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def round_number(params: dict, round_id: str) -> int:
    """t: the round's 0-based position (reads only the round's own schedule entry)."""
    rounds = params["rounds"]
    if round_id not in rounds:
        raise SystemExit(f"params.yaml: round {round_id!r} is not listed under `rounds`")
    return int(rounds[round_id]["t"])


def round_position(params: dict, round_id: str) -> tuple[int, int]:
    """(t, T): the round's 0-based position and the total number of rounds (reads the whole
    schedule, so a stage that calls it lists `rounds` in dvc.yaml)."""
    return round_number(params, round_id), len(params["rounds"])


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def shown(path: Path) -> Path:
    """`path` as a message names it: relative to the project root where it lies inside."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def show_progress() -> bool:
    """Progress bars on an interactive terminal; quiet logs otherwise (CI, files)."""
    return os.environ.get("IICS_PROGRESS", "auto") == "1" or (
        os.environ.get("IICS_PROGRESS", "auto") == "auto" and os.isatty(2)
    )
