"""Index Market-1501-layout person re-ID zips (train / query / gallery images).

Market-1501 and DukeMTMC-reID hold one set of the three folders; CUHK03-NP holds two, under
``detected/`` and ``labeled/`` (``.png`` crops named like ``0001_c1_1.png``), and one is chosen
with ``subset``.
"""

from __future__ import annotations

import os
import re

import pandas as pd

from iics.image_source import IMAGE_EXTENSIONS, ImageSource, SourceError, is_hidden
from iics.index import INT64_MAX, SPLITS, fits_int64, index_table

SPLIT_FOLDERS = {
    "train": "bounding_box_train",
    "query": "query",
    "gallery": "bounding_box_test",
}
FOLDER_SPLITS = {folder: split for split, folder in SPLIT_FOLDERS.items()}
JUNK_PID = -1
DISTRACTOR_PID = 0

EXPECTED_NAME = (
    "'<pid>_c<cam>[s<seq>]_<rest>.jpg' (or .png), e.g. '0002_c1s1_000451_03.jpg', "
    "'-1_c3s2_000123_01.jpg' or CUHK03-NP's '0001_c1_1.png'"
)
EXPECTED_LAYOUT = "bounding_box_train/, query/ and bounding_box_test/ (Market-1501 layout)"
_NAME_RE = re.compile(r"^(?P<pid>-1|\d+)_c(?P<cam>\d+)(?:s\d+)?_[^/\\]*\.(?:jpe?g|png)$", re.IGNORECASE)
# A file in a split folder is a crop when named like one, whatever its extension ('.jpe', '.jxl',
# '.jpg.part', none): one not read (only .jpg, .jpeg and .png are) is an error, not left out without a
# word. So is a file in one of the image formats below, however named. Other files there (Thumbs.db
# in the official Market-1501 zip, readme.txt) are ignored.
_CROP_START_RE = re.compile(r"^(?:-1|\d+)_c\d+(?:s\d+)?_", re.IGNORECASE)
UNREAD_IMAGE_EXTENSIONS = (
    ".bmp", ".dib", ".gif", ".tif", ".tiff", ".webp", ".jpe", ".jfif", ".pjpeg", ".pjp", ".jp2", ".j2k", ".jpf",
    ".jpx", ".j2c", ".jxl", ".heic", ".heif", ".avif", ".ppm", ".pgm", ".pbm", ".pnm", ".pam", ".tga", ".ico",
    ".pcx", ".dds", ".psd", ".qoi", ".sgi", ".exr", ".hdr", ".mpo",
)


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
    if not all(fits_int64(digits.lstrip("-")) for digits in match.group("pid", "cam")):
        raise ValueError(f"cannot parse image name {filename!r}: pid and camera must be 64-bit integers "
                         f"(at most {INT64_MAX})")
    pid, camid = int(match.group("pid")), int(match.group("cam"))
    if camid < 1:
        raise ValueError(f"cannot parse image name {filename!r}: camera ids are 1-based, got c{camid}")
    return pid, camid


def _is_crop_or_image(member: str) -> bool:
    """Whether a file in a split folder must be indexed or reported: named like a crop (any
    extension, or none), or ending in an image extension."""
    base = member.rpartition("/")[2]
    return _CROP_START_RE.match(base) is not None or base.lower().endswith(IMAGE_EXTENSIONS + UNREAD_IMAGE_EXTENSIONS)


def _layout_roots(names: list[str]) -> dict[str, dict[str, bool]]:
    """Every folder that directly holds a split folder: root ('' or 'a/b/') -> {split: whether
    that split folder directly holds an image file}. Hidden entries are skipped."""
    roots: dict[str, dict[str, bool]] = {}
    for member in names:
        if is_hidden(member):
            continue
        parts = member.split("/")
        for depth, part in enumerate(parts[:-1]):
            split = FOLDER_SPLITS.get(part)
            if split is None:
                continue
            root = "/".join(parts[:depth]) + "/" if depth else ""
            is_image = depth == len(parts) - 2 and member.lower().endswith(IMAGE_EXTENSIONS)
            splits = roots.setdefault(root, {})
            splits[split] = splits.get(split, False) or is_image
    return roots


def _shown(root: str) -> str:
    return root or "/ (the zip root)"


def _named_by(subset: str, roots) -> list[str]:
    """The folders of ``roots`` that ``subset`` names: the one it spells out in full
    ('cuhk03-np/detected', or '/' for the zip root), else those whose last part(s) it gives
    ('detected' for 'cuhk03-np/detected/')."""
    wanted = subset.strip("/")
    exact = [root for root in roots if root.rstrip("/") == wanted]
    return exact or [root for root in roots if wanted and root.endswith(f"/{wanted}/")]


def _subset_naming(root: str, roots) -> str:
    """The dataset.subset value that picks ``root`` alone: '/' for the zip root, its last folder
    where that is unambiguous, else its whole path."""
    last = root.rstrip("/").rpartition("/")[2] or "/"
    return last if _named_by(last, roots) == [root] else root.rstrip("/")


def _choose_root(zip_path: str, names: list[str], subset: str | None) -> str:
    """The one folder whose bounding_box_train/, query/ and bounding_box_test/ are indexed."""
    roots = _layout_roots(names)
    with_images = {root: splits for root, splits in roots.items() if any(splits.values())}
    candidates = pool = with_images or roots  # folders without images still name the layout in errors
    if subset is not None:
        chosen = {root: pool[root] for root in _named_by(subset, pool)}
        if not chosen:
            found = ", ".join(_shown(root) for root in sorted(candidates)) or "none"
            raise MarketFormatError(
                f"{zip_path}: dataset.subset is {subset!r} but no such folder holds {EXPECTED_LAYOUT}; "
                f"folders that do: {found}"
            )
        candidates = chosen
    if len(candidates) > 1:
        listed = ", ".join(_shown(root) for root in sorted(candidates))
        choices = [_subset_naming(root, pool) for root in sorted(candidates)]
        raise MarketFormatError(
            f"{zip_path}: several folders hold {EXPECTED_LAYOUT}: {listed}; set dataset.subset to the one "
            f"to index ({' or '.join(choices)}), e.g. -S dataset.subset={choices[0]}"
        )
    root = next(iter(candidates), "")
    missing = [folder for folder, split in FOLDER_SPLITS.items() if split not in candidates.get(root, {})]
    if missing:
        where = f" in {root}" if root else ""
        raise MarketFormatError(f"{zip_path}: missing folder(s) {', '.join(missing)}{where}; expected {EXPECTED_LAYOUT}"
                                f"{_missing_folders_hint(names, missing)}")
    return root


def _missing_folders_hint(names: list[str], missing: list[str]) -> str:
    """Why split folders may seem missing: member names with '\\' separators (as some Windows tools
    write), or folders spelt in another case ('Bounding_Box_Train/'). '' when neither."""
    visible = [member for member in names if not is_hidden(member)]
    backslashed = next((member for member in visible if "\\" in member), None)
    if backslashed is not None:
        return (f"; the member names use '\\' between folders, e.g. '{backslashed}'; expected '/' "
                f"(zip the folders again with a tool that writes '/')")
    variants = set()
    for member in visible:
        parts = member.split("/")
        for depth, part in enumerate(parts[:-1]):
            if part.lower() in missing and part not in missing:
                variants.add("/".join(parts[:depth + 1]) + "/")
    if variants:
        return f"; found {', '.join(sorted(variants))} (folder names are case-sensitive)"
    return ""


def _read_names(zip_path: str) -> list[str]:
    """File names in the zip, with one-line errors for missing or broken files."""
    try:
        source = ImageSource(zip_path)
    except SourceError as exc:
        raise MarketFormatError(f"{exc}; expected a Market-1501-layout .zip") from exc
    with source:
        try:
            return source.names()
        except SourceError as exc:  # a member twice: the message says what was expected
            raise MarketFormatError(str(exc)) from exc


def index_market_zip(zip_path: str | os.PathLike, subset: str | None = None) -> pd.DataFrame:
    """List the usable images of a Market-1501-layout zip.

    The zip holds ``bounding_box_train/``, ``query/`` and ``bounding_box_test/`` in one folder
    (at its root or below). Where several folders hold them, as CUHK03-NP's ``detected/`` and
    ``labeled/`` do, ``subset`` names the one to index (its last part, e.g. ``detected``, or a
    longer ``cuhk03-np/detected``); without it that is an error listing the candidates.
    Images are ``.jpg``, ``.jpeg`` or ``.png`` files (any case) directly inside the three folders;
    other files there named like a crop (``0002_c1s1_000451_03.jxl``, any extension or none), other
    image files (:data:`UNREAD_IMAGE_EXTENSIONS`) and images in their sub-folders are an error, any
    other file (``Thumbs.db``, ``readme.txt``) is ignored.

    Returns columns ``image`` (member path), ``pid``, ``camid`` (1-based), ``split``
    (train / query / gallery). Junk (pid -1) is dropped, distractors (pid 0) kept.
    Rows are ordered by split (train, query, gallery), then by member path.
    """
    zip_path = os.fspath(zip_path)
    names = _read_names(zip_path)
    root = _choose_root(zip_path, names, subset or None)
    rows, unread, junk = [], [], dict.fromkeys(SPLITS, 0)
    for member in names:
        if is_hidden(member) or not member.startswith(root):
            continue
        folder, _, rest = member[len(root):].partition("/")
        split = FOLDER_SPLITS.get(folder)
        if split is None:
            continue
        if "/" in rest or not member.lower().endswith(IMAGE_EXTENSIONS):
            if _is_crop_or_image(member):
                unread.append(member)  # an image in a sub-folder, or in a format not read
            continue  # anything else (Thumbs.db, readme.txt, ...) is no crop
        try:
            pid, camid = parse_market_name(member)
        except ValueError as exc:
            raise MarketFormatError(f"{zip_path}: {exc}") from None
        if pid == JUNK_PID:
            junk[split] += 1
        else:
            rows.append((member, pid, camid, split))
    if unread:
        train, query, gallery = (f"{root}{folder}/" for folder in SPLIT_FOLDERS.values())
        raise MarketFormatError(
            f"{zip_path}: {len(unread)} image file(s) in the split folders would be left out, the first "
            f"{unread[0]!r}; expected .jpg, .jpeg or .png crops directly inside {train}, {query} and {gallery} "
            f"(convert the others, or move them out of these folders)"
        )
    for split in SPLITS:
        if any(row[3] == split for row in rows):
            continue
        folder = f"{root}{SPLIT_FOLDERS[split]}/"
        if junk[split]:
            raise MarketFormatError(f"{zip_path}: folder {folder} has {junk[split]} image(s), all junk (pid -1, left out); "
                                    f"expected at least one crop with a pid of 0 or more")
        raise MarketFormatError(
            f"{zip_path}: folder {folder} has no usable .jpg or .png images (expected person crops named {EXPECTED_NAME})"
        )
    return index_table(rows, sort_by_image=True)
