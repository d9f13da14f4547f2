"""Index Market-1501-layout person re-ID zips (train / query / gallery images)."""

from __future__ import annotations

import os
import re

import pandas as pd

from iics.image_source import ImageSource, SourceError
from iics.index import SPLITS, index_table

SPLIT_FOLDERS = {
    "train": "bounding_box_train",
    "query": "query",
    "gallery": "bounding_box_test",
}
JUNK_PID = -1
DISTRACTOR_PID = 0

EXPECTED_NAME = "'<pid>_c<cam>s<seq>_<frame>_<box>.jpg', e.g. '0002_c1s1_000451_03.jpg' or '-1_c3s2_000123_01.jpg'"
_NAME_RE = re.compile(r"^(?P<pid>-1|\d+)_c(?P<cam>\d+)(?:s\d+)?_[^/\\]*\.jpg$", re.IGNORECASE)


class MarketFormatError(ValueError):
    """A file that is not a readable Market-1501-layout zip."""


def parse_market_name(filename: str) -> tuple[int, int]:
    """Return (pid, camid) from a Market-1501 image name; camid is 1-based as in the name.

    Accepts a bare name or a path ('/' or '\\' separated). pid -1 marks junk, 0 distractors.
    """
    base = re.split(r"[/\\]", str(filename))[-1]
    match = _NAME_RE.match(base)
    if match is None:
        raise ValueError(f"cannot parse image name {filename!r}: expected {EXPECTED_NAME}")
    pid, camid = int(match.group("pid")), int(match.group("cam"))
    if camid < 1:
        raise ValueError(f"cannot parse image name {filename!r}: camera ids are 1-based, got c{camid}")
    return pid, camid


def _is_ignored(member: str) -> bool:
    """True for macOS resource forks and other hidden entries."""
    parts = member.split("/")
    return any(p.startswith("__MACOSX") for p in parts) or parts[-1].startswith(".")


def _split_of(member: str) -> tuple[str, str] | None:
    """(split, folder path) for a .jpg directly inside one of the three split folders, else None."""
    if not member.lower().endswith(".jpg") or _is_ignored(member):
        return None
    folder, _, _ = member.rpartition("/")
    folder_name = folder.rpartition("/")[2]
    for split, name in SPLIT_FOLDERS.items():
        if folder_name == name:
            return split, folder
    return None


def _folders_present(names: list[str]) -> set[str]:
    """Names of the split folders that occur anywhere in the member paths."""
    wanted = set(SPLIT_FOLDERS.values())
    found = set()
    for member in names:
        if _is_ignored(member):
            continue
        dirs = member.split("/")[:-1]
        found.update(d for d in dirs if d in wanted)
    return found


def _read_names(zip_path: str) -> list[str]:
    """File names in the zip, with one-line errors for missing or broken files."""
    try:
        with ImageSource(zip_path) as source:
            return source.names()
    except SourceError as exc:
        raise MarketFormatError(f"{exc}; expected a Market-1501-layout .zip") from exc


def index_market_zip(zip_path: str | os.PathLike) -> pd.DataFrame:
    """List the usable images of a Market-1501-layout zip.

    Returns columns ``image`` (member path), ``pid``, ``camid`` (1-based), ``split``
    (train / query / gallery). Junk (pid -1) is dropped, distractors (pid 0) kept.
    Rows are ordered by split (train, query, gallery), then by member path.
    """
    zip_path = os.fspath(zip_path)
    names = _read_names(zip_path)
    missing = [f for f in SPLIT_FOLDERS.values() if f not in _folders_present(names)]
    if missing:
        raise MarketFormatError(
            f"{zip_path}: missing folder(s) {', '.join(missing)}; expected "
            f"bounding_box_train/, query/ and bounding_box_test/ (Market-1501 layout)"
        )
    rows = []
    folders: dict[str, set[str]] = {split: set() for split in SPLIT_FOLDERS}
    for member in names:
        found = _split_of(member)
        if found is None:
            continue
        split, folder = found
        folders[split].add(folder)
        try:
            pid, camid = parse_market_name(member)
        except ValueError as exc:
            raise MarketFormatError(f"{zip_path}: {exc}") from None
        if pid != JUNK_PID:
            rows.append((member, pid, camid, split))
    for split, paths in folders.items():
        if len(paths) > 1:
            raise MarketFormatError(
                f"{zip_path}: several {SPLIT_FOLDERS[split]}/ folders ({', '.join(sorted(paths))}); expected one"
            )
    for split in SPLITS:
        if not any(row[3] == split for row in rows):
            raise MarketFormatError(
                f"{zip_path}: folder {SPLIT_FOLDERS[split]}/ has no usable .jpg images "
                f"(expected person crops named {EXPECTED_NAME})"
            )
    return index_table(rows, sort_by_image=True)
