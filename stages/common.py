"""What every stage script shares: reading params.yaml, the artifact layout, writing JSON."""
from __future__ import annotations

import atexit
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import yaml

from iics.errors import FileError
from iics.image_cache import load_image_cache
from iics.index import read_index
from iics.progress import show_progress  # noqa: F401 (the stages import it from here)

ROOT = Path(__file__).resolve().parent.parent
PARAMS = ROOT / "params.yaml"
RUNS = ROOT / "runs"
METRICS = ROOT / "metrics"


def _report_peak_memory() -> None:
    """At exit, with IICS_REPORT_MEMORY=1 (set by benchmarks/measure.py), the stage's peak host
    memory and, where it used CUDA, its peak GPU memory, on stderr. The benchmarks read these
    lines: run by stages/run.py, a stage is a child of the warm process, which the resource usage
    of the command that started it does not cover. Otherwise nothing, so that a stage that fails
    says why in one line."""
    if os.environ.get("IICS_REPORT_MEMORY") != "1":
        return
    try:
        import resource
    except ImportError:  # Windows
        pass
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        print(f"peak host memory: {peak // (2**20 if sys.platform == 'darwin' else 2**10)} MiB", file=sys.stderr)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB", file=sys.stderr)


atexit.register(_report_peak_memory)


RECOMPOSE = "compose it from conf/ with python stages/configure.py"
# The top-level keys of params.yaml that hold a group of settings rather than one value (a test
# holds this to the shipped params.yaml).
GROUPS = ("dataset", "synthetic", "model", "features", "evaluate", "clustering", "intra", "inter", "augment",
          "plots", "rounds")


class Params(dict):
    """A group of params.yaml (the whole file at the top). Reading a key it lacks ends the stage
    in one line naming the dotted key, `params.yaml: intra.momentum is missing (...)`, instead of
    a KeyError traceback; `.get` and `in` still see a missing key as missing."""

    def __init__(self, data: dict, path: str = ""):
        super().__init__({key: Params(value, f"{path}{key}.") if isinstance(value, dict) else value
                          for key, value in data.items()})
        self._path = path

    def __missing__(self, key):
        raise SystemExit(f"{PARAMS.name}: {self._path}{key} is missing ({RECOMPOSE}, or add the key)")


def load_params() -> Params:
    """params.yaml as nested Params. Missing, unreadable, not YAML, or not a mapping of groups
    ends the stage in one line naming the file, before any work."""
    try:
        text = PARAMS.read_text()
    except FileNotFoundError:
        raise SystemExit(f"{PARAMS.name}: not found ({RECOMPOSE})") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise SystemExit(f"{PARAMS.name}: cannot be read ({reason})") from None
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SystemExit(f"{PARAMS.name}: not valid YAML ({where}{problem}); {RECOMPOSE}") from None
    if not isinstance(params, dict):
        raise SystemExit(f"{PARAMS.name}: expected a mapping of settings groups, got {type(params).__name__} "
                         f"({RECOMPOSE})")
    empty = [key for key, value in params.items() if value is None]  # `dataset:` with nothing under it
    if empty:
        raise SystemExit(f"{PARAMS.name}: {empty[0]} has no value ({RECOMPOSE})")
    plain = [key for key in GROUPS if key in params and not isinstance(params[key], dict)]  # `dataset: 5`
    if plain:
        raise SystemExit(f"{PARAMS.name}: {plain[0]} must be a group of settings, got {params[plain[0]]!r} "
                         f"({RECOMPOSE})")
    return Params(params)


def dataset_dir(params: dict) -> Path:
    """data/<dataset.name>/. A name YAML reads as a number or a bool (`dataset.name=2024`) stops
    the stage in one line: it is no folder name until quoted."""
    name = params["dataset"]["name"]
    if not isinstance(name, str) or not name:
        raise SystemExit(f"params.yaml: dataset.name must be a folder name, got {name!r}; quote a name YAML would "
                         f"read as a number or bool: -S \"dataset.name='{name}'\"")
    return ROOT / "data" / name


def prepared_dir(params: dict) -> Path:
    return dataset_dir(params) / "prepared"


@contextmanager
def inputs_must_load(stage: str) -> Iterator[None]:
    """Inside, a FileError (an index, image cache, checkpoint or round array that is missing,
    unreadable or does not fit) ends the stage with one line naming `stage` (e.g. "features r01")
    and the file, before anything is written. Under `dvc repro` every input is there and matches;
    a stage script run by hand (out of order, after a config change or a failed `dvc exp run`)
    meets these."""
    try:
        yield
    except FileError as error:
        raise SystemExit(f"{stage}: {shown(error.path)}: {error.reason}") from None


def load_index(params: dict, stage: str) -> dict[str, np.ndarray]:
    """The prepared index.csv of the configured dataset (written by `extract`), one array per
    column; missing or damaged ends `stage` (see inputs_must_load)."""
    with inputs_must_load(stage):
        return read_index(prepared_dir(params) / "index.csv")


def load_images(params: dict, stage: str, index: dict[str, np.ndarray]) -> np.ndarray:
    """The decoded uint8 image cache (N, H, W, 3), memory-mapped. Missing or damaged, or not the
    cache of `index` (the prepared index.csv as `load_index` read it: one image per index row)
    or of params.yaml's dataset.height x width, ends `stage` (see inputs_must_load): under
    `dvc repro` `extract` writes both files at that size, but a stage run by hand may meet a
    cache or index left by another run (a truncated index would score a subset silently)."""
    path = prepared_dir(params) / "images.npy"
    with inputs_must_load(stage):
        images = load_image_cache(path)
        rows = len(index["image"])
        if len(images) != rows:
            raise FileError(path, f"holds {len(images)} images but index.csv lists {rows} (the two are from different "
                                  "extract runs, or one is damaged; rerun the extract stage)")
        size, expected = tuple(images.shape[1:3]), (params["dataset"]["height"], params["dataset"]["width"])
        if size != expected:
            raise FileError(path, f"holds {size[0]} x {size[1]} images but params.yaml dataset.height x width is "
                                  f"{expected[0]} x {expected[1]} (made for another configuration; rerun the extract "
                                  "stage)")
    return images


# The arrays a round's stages hand on, by file name: what each holds and the stage writing it.
ROUND_ARRAYS = {
    "features.npy": ("features", "features"),
    "intra_labels.npy": ("labels", "intra_cluster"),
    "inter_labels.npy": ("labels", "inter_affinity"),
}


def load_round_array(stage: str, path: Path, rows: int) -> np.ndarray:
    """An array an earlier stage of the round saved with one row per train image: features
    (2-D float32 or float64) or pseudo-labels (1-D integers >= 0), told by its name (see
    ROUND_ARRAYS). Missing, unreadable, with another number of rows than `rows`, or of another
    kind (left from another dataset or configuration by a stage run by hand, or written by
    something else) ends `stage` (see inputs_must_load)."""
    kind, writer = ROUND_ARRAYS[path.name]
    rerun = f"rerun the {writer} stage that writes it"
    with inputs_must_load(stage):
        if not path.is_file():
            raise FileError(path, "not found (expected a file written by an earlier stage)")
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise FileError(path, f"not a readable .npy file ({error})") from None
        if array.shape[:1] != (rows,):
            raise FileError(path, f"holds shape {array.shape}, expected one row for each of the {rows} train images "
                                  "in the index (written for another dataset or configuration? rerun the stage that "
                                  "writes it)")
        if kind == "labels":
            if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
                raise FileError(path, f"holds {array.dtype} values of shape {array.shape}, expected pseudo-labels: a "
                                      f"1-D integer array, one label per train image ({rerun})")
            if rows and array.min() < 0:
                raise FileError(path, f"holds negative pseudo-labels (the smallest is {array.min()}), expected "
                                      f"integers >= 0 ({rerun})")
        elif array.ndim != 2 or array.dtype not in (np.float32, np.float64) or array.shape[1] == 0:
            raise FileError(path, f"holds {array.dtype} values of shape {array.shape}, expected features: a 2-D "
                                  f"float32 array, one row of at least one value per train image ({rerun})")
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
