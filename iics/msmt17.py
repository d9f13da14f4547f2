"""Index the official MSMT17 V2 zip (``MSMT17_V2.zip``) into train / query / gallery images.

The zip holds one folder (normally ``MSMT17_V2/``) with the image folders ``mask_train_v2/``
and ``mask_test_v2/`` and four list files whose lines read ``<relative path> <pid>``:
``list_train.txt`` and ``list_val.txt`` (relative to ``mask_train_v2/``; together the train
split), ``list_query.txt`` and ``list_gallery.txt`` (relative to ``mask_test_v2/``). Only the
member names and the four small list files are read, never the image bytes.
"""

from __future__ import annotations

import os
import re

import pandas as pd

from iics.image_source import ImageSource, SourceError, is_hidden
from iics.index import INT64_MAX, SPLITS, fits_int64, index_table

TRAIN_FOLDER = "mask_train_v2"
TEST_FOLDER = "mask_test_v2"
IMAGE_FOLDERS = (TRAIN_FOLDER, TEST_FOLDER)
# list file -> (split, image folder its paths are relative to); train = list_train + list_val
LIST_FILES = {
    "list_train.txt": ("train", TRAIN_FOLDER),
    "list_val.txt": ("train", TRAIN_FOLDER),
    "list_query.txt": ("query", TEST_FOLDER),
    "list_gallery.txt": ("gallery", TEST_FOLDER),
}
NUM_CAMERAS = 15

EXPECTED_NAME = (
    "'<pid>_<index>_<cam>_<date><time>_<frame>_<n>.jpg' (optionally '_ex' before '.jpg'), "
    "e.g. '0000_000_01_0303morning_0015_0.jpg'"
)
EXPECTED_LINE = "'<relative path> <pid>', e.g. '0000/0000_000_01_0303morning_0015_0.jpg 0'"
EXPECTED_LAYOUT = (
    "list_train.txt, list_val.txt, list_query.txt and list_gallery.txt next to "
    "mask_train_v2/ and mask_test_v2/ (MSMT17 V2 layout)"
)
_NAME_RE = re.compile(
    r"^(?P<pid>\d+)_(?P<index>\d+)_(?P<cam>\d+)_(?P<when>\d+[a-z]+)_(?P<frame>\d+)_(?P<n>\d+)"
    r"(?:_[a-z0-9]+)?\.jpg$",
    re.IGNORECASE,
)
_PID_RE = re.compile(r"^\d+$")


class Msmt17FormatError(ValueError):
    """A file that is not a readable MSMT17 V2 zip."""


def _parse_name(filename: str) -> tuple[int, int]:
    """(leading number of the name, 1-based camera) of an MSMT17 image name; ValueError otherwise."""
    base = re.split(r"[/\\]", str(filename))[-1]
    match = _NAME_RE.match(base)
    if match is None:
        raise ValueError(f"cannot parse image name {filename!r}: expected {EXPECTED_NAME}")
    camid = int(match.group("cam"))
    if not 1 <= camid <= NUM_CAMERAS:
        raise ValueError(
            f"cannot parse image name {filename!r}: camera field {match.group('cam')!r} is outside "
            f"1..{NUM_CAMERAS} (cameras are 1-based), expected {EXPECTED_NAME}"
        )
    return int(match.group("pid")), camid


def parse_msmt17_name(filename: str) -> int:
    """Return the 1-based camera id of an MSMT17 image name (bare name or path).

    The camera is the third underscore-separated field: '0000_000_01_0303morning_0015_0.jpg'
    -> 1. Raises ValueError naming the file and the expected form otherwise.
    """
    return _parse_name(filename)[1]


def _find_root(zip_path: str, names: list[str]) -> str:
    """The folder prefix ('' or 'MSMT17_V2/') that holds the list files; checks they are all there."""
    roots: dict[str, set[str]] = {}
    for member in names:
        if is_hidden(member):
            continue
        folder, _, base = member.rpartition("/")
        if base in LIST_FILES:
            roots.setdefault(folder + "/" if folder else "", set()).add(base)
    if not roots:
        raise Msmt17FormatError(
            f"{zip_path}: missing list file(s) {', '.join(LIST_FILES)} (found none in the zip); "
            f"expected {EXPECTED_LAYOUT}"
        )
    if len(roots) > 1:
        shown = ", ".join(repr(r or "<zip root>") for r in sorted(roots))
        raise Msmt17FormatError(
            f"{zip_path}: list files found in several folders ({shown}); expected one MSMT17_V2/ folder"
        )
    root, present = next(iter(roots.items()))
    missing = [name for name in LIST_FILES if name not in present]
    if missing:
        raise Msmt17FormatError(
            f"{zip_path}: missing list file(s) {', '.join(missing)} in {root or 'the zip root'}; "
            f"expected {EXPECTED_LAYOUT}"
        )
    return root


def _check_image_folders(zip_path: str, names: list[str], root: str) -> None:
    """One-line error when mask_train_v2/ or mask_test_v2/ holds no file next to the lists."""
    prefixes = {folder: f"{root}{folder}/" for folder in IMAGE_FOLDERS}
    found = {folder for folder, prefix in prefixes.items() if any(n.startswith(prefix) for n in names)}
    missing = [prefixes[f] for f in IMAGE_FOLDERS if f not in found]
    if missing:
        raise Msmt17FormatError(
            f"{zip_path}: missing image folder(s) {', '.join(missing)} (no files under it); "
            f"expected {EXPECTED_LAYOUT}"
        )


def _read_list(src: ImageSource, zip_path: str, member: str) -> list[tuple[int, str, int]]:
    """(line number, relative path, pid) for each non-blank line of one list file."""
    try:
        data = src.read(member)
    except SourceError as exc:
        raise Msmt17FormatError(f"{exc}; expected the MSMT17 V2 zip (MSMT17_V2.zip)") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Msmt17FormatError(
            f"{zip_path}: list file {member} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
            f"expected lines {EXPECTED_LINE}"
        ) from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        parts = stripped.split()
        if len(parts) != 2 or _PID_RE.match(parts[1]) is None or not fits_int64(parts[1]):
            shown = stripped if len(stripped) <= 120 else stripped[:117] + "..."
            raise Msmt17FormatError(
                f"{zip_path}: {member} line {number}: expected {EXPECTED_LINE} "
                f"(a path and a non-negative 64-bit integer pid, at most {INT64_MAX}), found {shown!r}"
            )
        entries.append((number, parts[0], int(parts[1])))
    return entries


def index_msmt17_zip(zip_path: str | os.PathLike) -> pd.DataFrame:
    """List the images of the official MSMT17 V2 zip as the list files split them.

    Returns columns ``image`` (member path inside the zip), ``pid`` (as the list gives it;
    0 is a real identity, query/gallery pids are their own id space), ``camid`` (1-based,
    1..15) and ``split`` (train = list_train + list_val, query, gallery). Rows are ordered by
    split (train, query, gallery), then by member path. Zip members that no list mentions are
    ignored. Called directly, it also accepts the zip extracted into a folder (paths are then
    relative to it); the extract stage does not: :func:`iics.datasets.index_dataset` passes the
    one .zip in ``data/<name>/raw/``. Raises FileNotFoundError for a missing path and
    Msmt17FormatError (a ValueError, one line starting with the path) for anything else that
    does not fit the layout.
    """
    zip_path = os.fspath(zip_path)
    try:
        source = ImageSource(zip_path)
    except SourceError as exc:
        raise Msmt17FormatError(f"{exc}; expected the MSMT17 V2 zip (MSMT17_V2.zip)") from exc
    with source as src:
        try:
            names = src.names()
        except SourceError as exc:  # a member twice: the message says what was expected
            raise Msmt17FormatError(str(exc)) from exc
        root = _find_root(zip_path, names)
        _check_image_folders(zip_path, names, root)
        lists = {name: _read_list(src, zip_path, root + name) for name in LIST_FILES}
    present = set(names)
    rows = []
    first_seen: dict[str, tuple[str, int]] = {}
    for list_name, entries in lists.items():
        split, folder = LIST_FILES[list_name]
        list_member = root + list_name
        for number, relative, pid in entries:
            where = f"{zip_path}: {list_member} line {number}"
            try:
                name_pid, camid = _parse_name(relative)
            except ValueError as exc:
                raise Msmt17FormatError(f"{where}: {exc}") from None
            if name_pid != pid:
                raise Msmt17FormatError(
                    f"{where}: pid {pid} in the list but the file name {relative!r} starts with "
                    f"{name_pid}; expected the list pid to equal the name's leading number"
                )
            member = f"{root}{folder}/{relative}"
            if member not in present:
                raise Msmt17FormatError(
                    f"{where}: image {relative!r} not in the zip (looked for {member!r}); "
                    f"expected every listed image under {root}{folder}/"
                )
            if member in first_seen:
                first_list, first_number = first_seen[member]
                raise Msmt17FormatError(
                    f"{zip_path}: image {member!r} listed twice ({first_list} line {first_number} and "
                    f"{list_member} line {number}); expected each image in exactly one list entry"
                )
            first_seen[member] = (list_member, number)
            rows.append((member, pid, camid, split))
    for split in SPLITS:
        if not any(row[3] == split for row in rows):
            sources = [root + n for n, (s, _) in LIST_FILES.items() if s == split]
            verb = "holds" if len(sources) == 1 else "hold"
            raise Msmt17FormatError(
                f"{zip_path}: split {split} is empty ({' and '.join(sources)} {verb} no entries); "
                f"expected at least one line {EXPECTED_LINE}"
            )
    return index_table(rows, sort_by_image=True)
