"""The prepared dataset index (`index.csv`: image, pid, camid, split)."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from iics.errors import FileError

if TYPE_CHECKING:  # only the readers and `extract` build DataFrames; they import pandas themselves
    import pandas as pd

COLUMNS = ("image", "pid", "camid", "split")
SPLITS = ("train", "query", "gallery")
INT64_MAX = 2**63 - 1  # pid and camid are stored as int64


class IndexFileError(FileError):
    """An index.csv that is missing or does not hold the columns and values above (`path`, `reason`)."""


def fits_int64(digits: str) -> bool:
    """Whether a string of decimal digits names an integer ``pid`` and ``camid`` can hold
    (at most :data:`INT64_MAX`). Its length is checked before it is converted: Python refuses
    to convert more than 4,300 digits, with an error about that limit instead."""
    significant = digits.lstrip("0")
    return len(significant) <= 19 and int(significant or "0") <= INT64_MAX


def read_index(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read and validate an index.csv into one NumPy array per column (``image`` and ``split``
    as strings, ``pid`` and ``camid`` as int64); row order matches the image cache.

    Plain ``csv`` rather than pandas: every per-round stage reads the index, and importing
    pandas alone cost 0.27 s of each stage's start-up."""
    path = Path(path)
    if not path.is_file():
        raise IndexFileError(path, "index not found (run the extract stage first)")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        rows = list(reader)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise IndexFileError(path, f"missing columns {missing}; expected {list(COLUMNS)}")
    position = {name: header.index(name) for name in COLUMNS}
    ragged = next((line for line, row in enumerate(rows, start=2) if len(row) != len(header)), None)
    if ragged is not None:
        raise IndexFileError(path, f"line {ragged} has a different number of fields than the header")
    columns = {name: [row[position[name]] for row in rows] for name in COLUMNS}
    index = {"image": np.array(columns["image"], dtype=str), "split": np.array(columns["split"], dtype=str)}
    for name in ("pid", "camid"):
        try:
            index[name] = np.array([int(value) for value in columns[name]], dtype=np.int64)
        except ValueError as exc:
            raise IndexFileError(path, f"column {name} must hold integers ({exc})") from None
    unknown = sorted(set(index["split"].tolist()) - set(SPLITS))
    if unknown:
        raise IndexFileError(path, f"unknown split values {unknown}; expected {list(SPLITS)}")
    return index


def index_table(rows: Iterable[tuple[str, int, int, str]], sort_by_image: bool) -> pd.DataFrame:
    """The index as the readers return it: (image, pid, camid, split) rows with typed columns,
    ordered by split (train, query, gallery), then by image path when ``sort_by_image``, else
    in the order given (stable)."""
    import pandas as pd

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


# The helpers below take the index as `read_index` returns it or as the readers build it (a
# DataFrame): anything whose columns `np.asarray` turns into arrays.


def split_rows(index, split: str) -> np.ndarray:
    """Row positions (into the image cache) of one split."""
    return np.flatnonzero(np.asarray(index["split"]) == split)


def matched_queries(index) -> np.ndarray:
    """Boolean per query row: whether the gallery holds an image of the same pid from another
    camera. Evaluation ignores a query's same-pid, same-camera gallery images, so a query
    without such a match is skipped; with none at all there is nothing to score."""
    query, gallery = split_rows(index, "query"), split_rows(index, "gallery")
    pids, cams = np.asarray(index["pid"]), np.asarray(index["camid"])
    cameras_of: dict[int, set[int]] = {}
    for pid, cam in zip(pids[gallery].tolist(), cams[gallery].tolist()):
        cameras_of.setdefault(pid, set()).add(cam)
    return np.array(
        [len(cameras_of.get(pid, ())) > (cam in cameras_of.get(pid, ()))
         for pid, cam in zip(pids[query].tolist(), cams[query].tolist())],
        dtype=bool,
    )


def unmatched_queries_problem(index) -> str | None:
    """None unless there are query and gallery images but no query has a gallery image of its
    pid from another camera; then a one-line description of what evaluation needs."""
    if not (len(split_rows(index, "query")) and len(split_rows(index, "gallery"))):
        return None
    matched = matched_queries(index)
    if matched.any():
        return None
    return (
        f"0 of {len(matched)} query images have a gallery image of the same pid from another camera; "
        f"evaluation needs at least one (gallery images from the query's own camera are ignored)"
    )


def has_evaluation_split(index) -> bool:
    """True when there are query and gallery images, all with identities, and at least one
    query has a gallery image of its pid from another camera (see :func:`matched_queries`)."""
    query, gallery = split_rows(index, "query"), split_rows(index, "gallery")
    pids = np.asarray(index["pid"])
    labelled = bool(len(query) and len(gallery) and (pids[query] >= 0).all() and (pids[gallery] >= 0).all())
    return labelled and bool(matched_queries(index).any())


def has_train_identities(index) -> bool:
    """True when there are training images and every one has an identity (pseudo-label diagnostics)."""
    train_pids = np.asarray(index["pid"])[split_rows(index, "train")]
    return len(train_pids) > 0 and bool((train_pids >= 0).all())


def camera_positions(camids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map camera ids to 0..C-1. Returns (sorted unique camera ids, position of each row)."""
    cameras, positions = np.unique(np.asarray(camids), return_inverse=True)
    return cameras, positions.astype(np.int64)
