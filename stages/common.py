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
    """The prepared index.csv of the configured dataset (written by `extract`), one array per
    column. Missing or damaged: one line naming the file, and the stage ends."""
    path = prepared_dir(params) / "index.csv"
    try:
        return read_index(path)
    except (FileNotFoundError, ValueError) as error:
        raise _stop(path, error) from None


def load_images(params: dict) -> np.ndarray:
    """The decoded uint8 image cache (N, H, W, 3), memory-mapped; rows match index.csv. Missing
    or damaged: one line naming the file, and the stage ends."""
    path = prepared_dir(params) / "images.npy"
    try:
        return load_image_cache(path)
    except (FileNotFoundError, ValueError) as error:
        raise _stop(path, error) from None


def load_round_array(stage: str, path: Path, rows: int) -> np.ndarray:
    """An array an earlier stage of the round saved with one row per train image (features,
    pseudo-labels). Missing, unreadable, or with another number of rows than `rows` (left from
    another dataset or configuration by a stage run by hand): one line naming `stage` (e.g.
    "intra_train r01") and the file, and the stage ends."""
    if not path.is_file():
        raise SystemExit(f"{stage}: {shown(path)}: not found (expected a file written by an earlier stage)")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise SystemExit(f"{stage}: {shown(path)}: not a readable .npy file ({error})") from None
    if array.shape[:1] != (rows,):
        raise SystemExit(f"{stage}: {shown(path)}: holds shape {array.shape}, expected one row for each of the "
                         f"{rows} train images in the index (written for another dataset or configuration? "
                         "rerun the stage that writes it)")
    return array


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


def _stop(path: Path, error: Exception) -> SystemExit:
    """A library error about `path` (its message "path: reason") as the one line a stage ends
    with, the path shown relative to the project."""
    return SystemExit(f"{shown(path)}: {str(error).removeprefix(f'{path}: ')}")


def show_progress() -> bool:
    """Progress bars on an interactive terminal; quiet logs otherwise (CI, files)."""
    return os.environ.get("IICS_PROGRESS", "auto") == "1" or (
        os.environ.get("IICS_PROGRESS", "auto") == "auto" and os.isatty(2)
    )
