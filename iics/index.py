"""The prepared dataset index (`index.csv`: image, pid, camid, split)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

COLUMNS = ("image", "pid", "camid", "split")
SPLITS = ("train", "query", "gallery")


def read_index(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate an index.csv; row order matches the image cache."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: index not found (run the extract stage first)")
    index = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in index.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {list(COLUMNS)}")
    unknown = sorted(set(index["split"]) - set(SPLITS))
    if unknown:
        raise ValueError(f"{path}: unknown split values {unknown}; expected {list(SPLITS)}")
    return index


def index_table(rows: Iterable[tuple[str, int, int, str]], sort_by_image: bool) -> pd.DataFrame:
    """The index as the readers return it: (image, pid, camid, split) rows with typed columns,
    ordered by split (train, query, gallery), then by image path when ``sort_by_image``, else
    in the order given (stable)."""
    frame = pd.DataFrame(list(rows), columns=list(COLUMNS))
    frame["order"] = frame["split"].map({s: i for i, s in enumerate(SPLITS)})
    keys = ["order", "image"] if sort_by_image else ["order"]
    frame = frame.sort_values(keys, kind="mergesort").drop(columns="order").reset_index(drop=True)
    return frame.astype({"image": str, "pid": "int64", "camid": "int64", "split": str})


def write_index(index: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write index.csv through a temporary file, so a partial file never has the final name."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    index.loc[:, list(COLUMNS)].to_csv(tmp, index=False)
    os.replace(tmp, path)


def split_rows(index: pd.DataFrame, split: str) -> np.ndarray:
    """Row positions (into the image cache) of one split."""
    return np.flatnonzero(index["split"].to_numpy() == split)


def has_evaluation_split(index: pd.DataFrame) -> bool:
    """True when there are query and gallery images, all with identities, to evaluate on."""
    test = index[index["split"].isin(["query", "gallery"])]
    return bool(len(split_rows(index, "query")) and len(split_rows(index, "gallery")) and (test["pid"] >= 0).all())


def has_train_identities(index: pd.DataFrame) -> bool:
    """True when there are training images and every one has an identity (pseudo-label diagnostics)."""
    train_pids = index.loc[index["split"] == "train", "pid"]
    return len(train_pids) > 0 and bool((train_pids >= 0).all())


def camera_positions(camids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map camera ids to 0..C-1. Returns (sorted unique camera ids, position of each row)."""
    cameras, positions = np.unique(np.asarray(camids), return_inverse=True)
    return cameras, positions.astype(np.int64)
