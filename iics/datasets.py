"""Which files make up a dataset, how to index them, and the checks for the official releases.

Three layouts are understood:

- ``market``: one zip in Market-1501's folders and naming (Market-1501, DukeMTMC-reID,
  the embedded synthetic set, CUHK03-NP with ``dataset.subset`` choosing ``detected`` or
  ``labeled``, ...);
- ``msmt17``: the MSMT17 V2 zip with its list files;
- ``csv``: your own crops, ``images.csv`` next to ``images.zip`` or an ``images/`` folder.

Datasets named after an official release (:data:`OFFICIAL`) must be that release's zip: its md5
(where published) and its image, identity and camera counts are checked, and any mismatch
stops extraction. A name differing from an official one only in case (``Market1501``) is an
error, not an unchecked copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from iics.checksum import file_digest
from iics.footage import index_footage
from iics.index import unmatched_queries_problem
from iics.market import DISTRACTOR_PID, index_market_zip
from iics.msmt17 import index_msmt17_zip

LAYOUTS = ("market", "msmt17", "csv")
FOOTAGE_CSV = "images.csv"
FOOTAGE_ZIP = "images.zip"
FOOTAGE_FOLDER = "images"
ZIP_READERS = {"market": index_market_zip, "msmt17": index_msmt17_zip}


class DatasetError(ValueError):
    """Raw data that does not match what the dataset's name or layout promises."""


@dataclass(frozen=True)
class OfficialRelease:
    """Published facts about one benchmark's distributed zip."""

    title: str
    layout: str
    zip_name: str
    md5s: tuple[str, ...]  # every published md5 of the zip (uploads differ); empty where none is published
    images: dict  # split -> image count after dropping junk
    train_ids: int
    cameras: int


OFFICIAL = {
    "market1501": OfficialRelease(
        "Market-1501", "market", "Market-1501-v15.09.15.zip", ("65005ab7d12ec1c44de4eeafe813e68a",),
        {"train": 12936, "query": 3368, "gallery": 15913}, train_ids=751, cameras=6,
    ),
    "dukemtmc": OfficialRelease(
        # the first upload, and the later one (Google Drive id 1jjE85dR..., vision.cs.duke.edu)
        "DukeMTMC-reID", "market", "DukeMTMC-reID.zip",
        ("2f93496f9b516d1ee5ef51c1d5e7d601", "62d8f3c7d6b2c5dc3d8ca6af7515847c"),
        {"train": 16522, "query": 2228, "gallery": 17661}, train_ids=702, cameras=8,
    ),
    "msmt17": OfficialRelease(
        "MSMT17 V2", "msmt17", "MSMT17_V2.zip", (),
        {"train": 32621, "query": 11659, "gallery": 82161}, train_ids=1041, cameras=15,
    ),
}


def summarize(index: pd.DataFrame, layout: str) -> dict:
    """Images, identities and cameras per split. Identities count the distinct pids >= 0, except
    that in the market layout pid 0 marks distractors (gallery images of nobody in particular):
    they are no identity, and their images are counted on their own as ``distractors``. In
    MSMT17 and your own footage pid 0 is an ordinary identity."""
    summary = {}
    for split, part in index.groupby("split", sort=False):
        pids = part["pid"]
        distractor = pids == DISTRACTOR_PID if layout == "market" else pd.Series(False, index=pids.index)
        summary[split] = {
            "images": int(len(part)),
            "ids": int(pids[(pids >= 0) & ~distractor].nunique()),
            "cameras": int(part["camid"].nunique()),
        }
        if layout == "market":
            summary[split]["distractors"] = int(distractor.sum())
    return summary


def check_official_counts(index: pd.DataFrame, release: OfficialRelease, zip_path: str) -> None:
    """DatasetError listing every count that differs from the published release."""
    found = summarize(index, release.layout)
    problems = []
    for split, expected in release.images.items():
        got = found.get(split, {}).get("images", 0)
        if got != expected:
            problems.append(f"{split} images expected {expected}, found {got}")
    train = found.get("train", {})
    if train.get("ids", 0) != release.train_ids:
        problems.append(f"train identities expected {release.train_ids}, found {train.get('ids', 0)}")
    cameras = int(index["camid"].nunique())
    if cameras != release.cameras:
        problems.append(f"cameras expected {release.cameras}, found {cameras}")
    if problems:
        raise DatasetError(
            f"{zip_path}: does not match the published {release.title} release: " + "; ".join(problems)
            + " (an incomplete or modified copy; extract the official zip again)"
        )


def _check_evaluable(index: pd.DataFrame, zip_path: Path) -> None:
    """DatasetError when query and gallery exist but no query can be scored: evaluation would
    otherwise fail only after training."""
    problem = unmatched_queries_problem(index)
    if problem is not None:
        raise DatasetError(f"{zip_path}: {problem}")


def _single_zip(raw_dir: Path) -> Path:
    zips = sorted(p for p in raw_dir.iterdir() if p.suffix.lower() == ".zip" and p.is_file())  # MyData.ZIP too
    if len(zips) != 1:
        found = ", ".join(p.name for p in zips) or "none"
        raise DatasetError(f"{raw_dir}: expected exactly one dataset .zip, found {found}")
    return zips[0]


def _official_zip(raw_dir: Path, release: OfficialRelease) -> Path:
    path = raw_dir / release.zip_name
    if path.is_dir():
        raise DatasetError(f"{path}: a folder, not a zip file; the {release.title} configuration expects the official "
                           f"zip there, as downloaded (not unpacked)")
    if not path.is_file():
        found = ", ".join(sorted(p.name for p in raw_dir.glob("*"))) if raw_dir.is_dir() else "no such folder"
        raise DatasetError(
            f"{path}: not found; the {release.title} configuration expects the official zip there "
            f"(found in {raw_dir}: {found or 'nothing'})"
        )
    return path


def _footage_source(raw_dir: Path) -> tuple[Path, Path]:
    csv_path = raw_dir / FOOTAGE_CSV
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: not found; layout csv expects {FOOTAGE_CSV} (image, camid[, pid, split]) in {raw_dir}")
    zip_path, folder = raw_dir / FOOTAGE_ZIP, raw_dir / FOOTAGE_FOLDER
    if zip_path.is_file() == folder.is_dir():
        state = "both exist" if zip_path.is_file() else "neither exists"
        raise DatasetError(f"{raw_dir}: layout csv expects either {FOOTAGE_ZIP} or an {FOOTAGE_FOLDER}/ folder beside {FOOTAGE_CSV}; {state}")
    return csv_path, zip_path if zip_path.is_file() else folder


def _read_zip(layout: str, zip_path: Path, subset: str | None) -> pd.DataFrame:
    if layout == "market":
        return index_market_zip(zip_path, subset=subset)
    return ZIP_READERS[layout](zip_path)


def check_dataset_settings(raw_dir: str | os.PathLike, name: str, layout: str, subset: str | None) -> str | None:
    """The checks of `index_dataset` that read no raw file: dataset.layout and dataset.subset
    valid and agreeing with an official `name`, and the raw folder present. Returns the subset
    (None for none). `extract` calls it before it touches the prepared folder."""
    raw_dir = Path(raw_dir)
    if layout not in LAYOUTS:
        raise DatasetError(f"dataset.layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    subset = subset or None
    if subset is not None and not isinstance(subset, str):
        raise DatasetError(f"dataset.subset must be a folder name or null, got {subset!r}")
    if subset is not None and layout != "market":
        raise DatasetError(
            f"dataset.subset is {subset!r} but only the market layout has subsets; got dataset.layout "
            f"{layout!r} (set dataset.subset=null)"
        )
    if not raw_dir.is_dir():
        raise DatasetError(f"{raw_dir}: no such folder; put the dataset files there (see data/README.md)")
    release = OFFICIAL.get(name)
    if release is None and isinstance(name, str) and name.lower() in OFFICIAL:
        official = name.lower()
        raise DatasetError(
            f"dataset.name {name!r} differs from the official {official!r} only in case; use {official!r} for its "
            f"checksums and counts, or another name for an unchecked {OFFICIAL[official].layout}-layout zip"
        )
    if release is not None and layout != release.layout:
        raise DatasetError(
            f"dataset {name!r} is the official {release.title} release, layout {release.layout!r}; "
            f"got dataset.layout {layout!r} (use another dataset name for a different layout)"
        )
    return subset


def index_dataset(
    raw_dir: str | os.PathLike, name: str, layout: str, progress: bool = False, subset: str | None = None,
) -> tuple[Path, pd.DataFrame]:
    """Locate, verify and index a dataset's raw files.

    Returns the image source (zip or folder) and the index table (image, pid, camid, split)
    in the row order the image cache will use. Official release names are checked for the
    expected zip name, its md5 and the published counts. ``subset`` (``dataset.subset``, market
    layout only) names the folder holding the three Market folders when the zip has several,
    e.g. CUHK03-NP's ``detected`` or ``labeled``.
    """
    raw_dir = Path(raw_dir)
    subset = check_dataset_settings(raw_dir, name, layout, subset)
    release = OFFICIAL.get(name)
    if layout == "csv":
        csv_path, source = _footage_source(raw_dir)
        index = index_footage(csv_path, source)
        _check_names(index, csv_path)
        return source, index
    if release is None:
        try:
            zip_path = _single_zip(raw_dir)
            index = _read_zip(layout, zip_path, subset)
        except ValueError as error:
            if (raw_dir / FOOTAGE_CSV).is_file():  # own crops, but the configuration reads a zip layout
                raise DatasetError(f"{error}; {raw_dir} holds {FOOTAGE_CSV}: for your own crops use "
                                   "-S dataset=footage (dataset.layout=csv)") from None
            raise
        _check_names(index, zip_path)
        _check_evaluable(index, zip_path)
        return zip_path, index
    zip_path = _official_zip(raw_dir, release)
    if release.md5s:
        try:
            found = file_digest(zip_path, "md5", progress=progress)
        except OSError as exc:  # a zip the user may not read, say
            raise DatasetError(f"{zip_path}: cannot read the file ({exc.strerror or exc})") from None
        if found not in release.md5s:
            expected = " or ".join(release.md5s)
            raise DatasetError(
                f"{zip_path}: md5 {found} does not match the official {release.title} zip "
                f"(expected {expected}); the download is damaged or a different file"
            )
    index = _read_zip(layout, zip_path, subset)
    _check_names(index, zip_path)
    check_official_counts(index, release, str(zip_path))
    _check_evaluable(index, zip_path)
    return zip_path, index


def _check_names(index: pd.DataFrame, listed_in: Path) -> None:
    """index.csv quotes a name holding a line feed, but not one holding a lone carriage return, and
    reading the file back would split that name's row in two: every later stage would fail."""
    bad = next((name for name in index["image"] if "\r" in name), None)
    if bad is not None:
        raise DatasetError(f"{listed_in}: image {bad!r} has a carriage return in its name, which index.csv cannot "
                           f"hold; expected names without one (rename the file)")
