"""Index your own footage: person crops in a zip or folder, described by a CSV.

The CSV has a header row; its columns may come in any order:

- ``image`` (required): the file's path inside the zip, or relative to the folder, '/'-separated;
- ``camid`` (required): the camera number, a non-negative integer (need not be contiguous);
- ``pid`` (optional): the identity, a non-negative integer, used only for evaluation and for
  pseudo-label diagnostics, never for training; an empty cell (or no column) marks an
  unlabelled image, stored as :data:`UNLABELLED`;
- ``split`` (optional): ``train``, ``query`` or ``gallery``; an empty cell (or no column) means
  ``train``. Query and gallery rows need a pid, and the two come together or not at all; at
  least one query needs a gallery image of its pid from another camera, or there is nothing
  to evaluate.

Any other column is an error, so that a misspelt name (``camera``) does not go unnoticed. Every
problem in the CSV, or with an image it lists, is reported as a one-line
:class:`FootageFormatError` naming the CSV and its line; a source that cannot be read is a
one-line :class:`iics.image_source.SourceError` naming it. Only the names of the files in the
source are read, never their bytes.
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata

import pandas as pd

from iics.image_source import ImageSource, is_hidden
from iics.index import INT64_MAX, SPLITS, fits_int64, index_table, unmatched_queries_problem

REQUIRED_COLUMNS = ("image", "camid")
OPTIONAL_COLUMNS = ("pid", "split")
UNLABELLED = -1
MISSING_SHOWN = 5  # how many missing images a "not found" error lists by name

_EXPECTED_HEADER = "image, camid and optionally pid, split"
_INTEGER_RE = re.compile(r"[0-9]+")


class FootageFormatError(ValueError):
    """A footage CSV that is malformed or does not match its images."""


def _fail(csv_path: str, line: int | str, message: str) -> FootageFormatError:
    return FootageFormatError(f"{csv_path}: line {line}: {message}")


def _record_start_line(csv_path: str, record: int) -> int | str:
    """The file line on which the 1-based CSV ``record`` starts. pandas numbers records, not
    lines: after a quoted cell spanning several lines the two differ."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            start = 1
            for number, _ in enumerate(reader, start=1):
                if number == record:
                    return start
                start = reader.line_num + 1
    except (csv.Error, UnicodeDecodeError):
        pass
    return f"{record} (CSV record)"  # only where the csv module and pandas disagree on the records


def _unclosed_quote_line(csv_path: str, record: int) -> int | str:
    """The file line on which a quoted cell opens that is never closed. Quotes follow pandas' rules:
    a quote opens a quoted cell only as the cell's first character (elsewhere it is a character of
    the cell), and two quotes inside a quoted cell stand for one. Should the scan find no such
    quote, the line on which ``record`` (pandas' 1-based record holding the cell) starts."""
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        text = f.read()
    opened, escaped = None, -1
    for match in re.finditer('"', text):
        at = match.start()
        if at == escaped:
            continue
        if opened is None:
            if at == 0 or text[at - 1] in ",\r\n":
                opened = at
        elif text.startswith('"', at + 1):
            escaped = at + 1
        else:
            opened = None
    return _record_start_line(csv_path, record) if opened is None else text.count("\n", 0, opened) + 1


def _read_cells(csv_path: str) -> tuple[list[str], list[list[str]], list[int]]:
    """(header cells, data rows as lists of str, the file line each data row starts on)."""
    if not os.path.isfile(csv_path):
        raise FileNotFoundError(f"{csv_path}: no such file (expected a CSV with columns {_EXPECTED_HEADER})")
    try:
        table = pd.read_csv(
            csv_path, header=None, dtype=str, keep_default_na=False, skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError:
        # pandas says so for an empty file and for one whose first line is blank alike
        with open(csv_path, encoding="utf-8-sig", errors="replace") as f:
            empty = not f.read(1)
        what = "empty file" if empty else "no header on line 1 (found a blank line)"
        raise _fail(csv_path, 1, f"{what}; expected a header row with columns {_EXPECTED_HEADER} on line 1") from None
    except pd.errors.ParserError as exc:
        unclosed = re.search(r"EOF inside string starting at row (\d+)", str(exc))  # pandas' rows count from 0
        if unclosed is not None:
            line = _unclosed_quote_line(csv_path, int(unclosed.group(1)) + 1)
            raise _fail(csv_path, line, 'a quote is opened and never closed; expected a closing " at the end of the '
                                        'quoted cell (a quote within it written as "")') from None
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found is None:
            raise FootageFormatError(f"{csv_path}: not a readable CSV file ({exc})") from None
        want, record, saw = (int(group) for group in found.groups())
        line = _record_start_line(csv_path, record)
        raise _fail(csv_path, line, f"expected {want} comma-separated fields as in the header, found {saw}") from None
    except UnicodeDecodeError as exc:
        raise FootageFormatError(f"{csv_path}: not UTF-8 text ({exc}); save the CSV as UTF-8") from None
    except OSError as exc:  # a file the user may not read, say
        raise FootageFormatError(f"{csv_path}: cannot read the file ({exc.strerror or exc})") from None
    table = table.fillna("")  # rows shorter than the header
    rows = table.values.tolist()
    # A quoted cell may span several lines; count them so that line numbers match the file.
    newlines = table.apply(lambda column: column.str.count("\n")).sum(axis=1).tolist()
    lines, line = [], 1
    for extra in newlines:
        lines.append(line)
        line += 1 + int(extra)
    return rows[0], rows[1:], lines[1:]


def _column_positions(csv_path: str, header: list[str]) -> dict[str, int]:
    """Map each known column name to its position; errors for missing, unknown or repeated names."""
    names = [str(cell).strip().lower() for cell in header]
    known = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    problems = []
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        problems.append(f"repeated column(s) {', '.join(map(repr, repeated))}")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        problems.append(f"missing required column(s) {', '.join(map(repr, missing))}")
    unknown = [cell for cell, name in zip(header, names) if name not in known]
    if unknown:
        problems.append(f"unknown column(s) {', '.join(map(repr, unknown))}")
    if problems:
        found = ", ".join(map(repr, header))
        raise _fail(csv_path, 1, f"{'; '.join(problems)}; expected columns {_EXPECTED_HEADER}, found {found}")
    return {name: names.index(name) for name in known if name in names}


def _parse_integer(csv_path: str, line: int, column: str, text: str, hint: str = "") -> int:
    """A non-negative integer cell (surrounding spaces allowed)."""
    value = text.strip()
    digits = _INTEGER_RE.fullmatch(value) is not None
    if digits and fits_int64(value):
        return int(value)
    found = "an empty cell" if not value else repr(text if len(text) <= 40 else text[:37] + "...")
    limit = f" of at most {INT64_MAX}" if digits else ""  # pid and camid are stored as int64
    raise _fail(csv_path, line, f"{column}: expected a non-negative integer{limit}{hint}, found {found}")


def _check_splits(csv_path: str, splits: list[str], pids: list[int], camids: list[int], lines: list[int]) -> None:
    """At least one train row; query and gallery both present or both absent; when present, at
    least one query with a gallery image of its pid from another camera (else evaluation has
    nothing to score, and would fail only after training)."""
    first = {}
    for split, line in zip(splits, lines):
        first.setdefault(split, line)
    if "train" not in first:
        counts = ", ".join(f"{splits.count(s)} {s}" for s in SPLITS if s in first)
        raise _fail(
            csv_path, f"{lines[0]}-{lines[-1]}",
            f"no train rows; expected at least one row with split 'train' (or an empty split cell), found {counts}",
        )
    for present, absent in (("query", "gallery"), ("gallery", "query")):
        if present in first and absent not in first:
            raise _fail(
                csv_path, first[present],
                f"{present} rows but no {absent} rows; expected both query and gallery (to evaluate) "
                f"or neither (train only), {absent} is missing",
            )
    problem = unmatched_queries_problem({"pid": pids, "camid": camids, "split": splits})
    if problem is not None:
        raise _fail(csv_path, first["query"], problem)


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def _broken_link(folder: str, image: str) -> str | None:
    """The first part of ``image``'s path ('cam3', or the whole name) that is a symbolic link in
    ``folder`` whose target does not exist, or None."""
    parts = image.split("/")
    for depth in range(1, len(parts) + 1):
        path = os.path.join(folder, *parts[:depth])
        if not os.path.lexists(path):
            return None
        if os.path.islink(path) and not os.path.exists(path):
            return "/".join(parts[:depth])
    return None


def _check_links(csv_path: str, folder: str, missing: list[tuple[int, str]]) -> None:
    """An error for the first missing image behind a broken symbolic link (a crop store that moved,
    a camera's folder on a disk not mounted): not found in the folder, but for another reason."""
    broken = [(line, image, link) for line, image in missing if (link := _broken_link(folder, image)) is not None]
    if not broken:
        return
    line, image, link = broken[0]
    subject = f"image {image!r}" if link == image else f"image {image!r}: its folder {link!r}"
    more = f"; {len(broken) - 1} more listed image(s) are behind broken links" if len(broken) > 1 else ""
    target = os.readlink(os.path.join(folder, link))
    raise _fail(csv_path, line, f"{subject} is a broken symbolic link in {folder} (to {target!r}, which does not exist)"
                                f"{more}; expected each link to lead to an existing file or folder")


def _match_images(csv_path: str, images_path: str, images: list[str], lines: list[int]) -> list[str]:
    """The source's name of every listed image (only names are read): the name itself, or the one
    name in the source equal to it under Unicode NFC. A name typed in NFC ('é' as one code point)
    looks the same as the NFD a Mac may write ('e' and an accent) but is another string."""
    with ImageSource(images_path) as source:
        names = source.names()
        kind = "zip" if source.is_zip else "folder"
    present = set(names)
    alike: dict[str, list[str]] = {}
    for name in names:
        alike.setdefault(_nfc(name), []).append(name)
    matched, missing = [], []
    for image, line in zip(images, lines):
        found = [image] if image in present else alike.get(_nfc(image), [])
        if len(found) == 1:
            matched.append(found[0])
        else:  # absent, or two names it matches only under NFC: neither is chosen
            missing.append((line, image))
    if not missing:
        return matched
    if kind == "folder":
        _check_links(csv_path, images_path, missing)
    shown = ", ".join(f"line {line} {image!r}" for line, image in missing[:MISSING_SHOWN])
    if len(missing) > MISSING_SHOWN:
        shown += f" and {len(missing) - MISSING_SHOWN} more"
    visible = [name for name in names if not is_hidden(name)]
    example = f"it holds e.g. {visible[0]!r}" if visible else "it holds no files"
    hint = "; use '/' between folders, not '\\'" if any("\\" in image for _, image in missing) else ""
    # Spaces around a name are kept (a file name may have them), but say so when that is the miss.
    spaced = next(((line, image) for line, image in missing if image.strip() != image and _nfc(image.strip()) in alike), None)
    if spaced is not None:
        hint += (f"; line {spaced[0]} {spaced[1]!r} has spaces around the name and {spaced[1].strip()!r} exists: "
                 f"remove them from the CSV")
    raise _fail(
        csv_path, missing[0][0],
        f"{len(missing)} of {len(images)} listed image(s) not found in {kind} {images_path}: {shown}; "
        f"expected paths relative to the {kind}, '/'-separated ({example}){hint}",
    )


def index_footage(csv_path: str | os.PathLike, images_path: str | os.PathLike) -> pd.DataFrame:
    """Index person crops described by a CSV, stored in a zip or a folder.

    Returns the table :func:`iics.market.index_market_zip` returns: columns ``image`` (path as
    the CSV gives it, or as the source spells it where the two differ only in Unicode
    normalisation), ``pid`` (:data:`UNLABELLED` where unknown), ``camid``, ``split``; rows
    ordered train, query, gallery, each in CSV order. Raises :class:`FootageFormatError` for
    any problem in the CSV or an image it lists that the source lacks (or holds behind a broken
    link); :class:`iics.image_source.SourceError` for a source that cannot be read (not a readable
    zip, a member name held twice, a sub-folder that cannot be listed); FileNotFoundError for a
    missing CSV or source. All but the last are ValueErrors with a one-line message.
    """
    csv_path, images_path = os.fspath(csv_path), os.fspath(images_path)
    header, rows, row_lines = _read_cells(csv_path)
    position = _column_positions(csv_path, header)
    images, pids, camids, splits, lines = [], [], [], [], []
    first_line: dict[str, int] = {}
    for cells, line in zip(rows, row_lines):
        if not any(str(cell).strip() for cell in cells):
            continue  # blank line
        cell = {name: str(cells[i]) for name, i in position.items()}
        image = cell["image"]
        if not image.strip():
            raise _fail(csv_path, line, "image: expected a path inside the zip or folder, found an empty cell")
        camid = _parse_integer(csv_path, line, "camid", cell["camid"])
        pid_text = cell.get("pid", "")
        pid = UNLABELLED
        if pid_text.strip():
            pid = _parse_integer(csv_path, line, "pid", pid_text, " (or an empty cell for an unlabelled image)")
        split = cell.get("split", "").strip().lower() or "train"
        if split not in SPLITS:
            raise _fail(
                csv_path, line, f"split: expected train, query or gallery (or an empty cell for train), "
                f"found {cell['split']!r}",
            )
        if _nfc(image) in first_line:  # names that differ only in Unicode normalisation are one file
            raise _fail(csv_path, line, f"duplicate image {image!r}, first listed on line {first_line[_nfc(image)]}; "
                                        f"expected each image once")
        if split != "train" and pid == UNLABELLED:
            found = "an empty cell" if "pid" in position else "no pid column"
            raise _fail(
                csv_path, line, f"pid: {split} images need an identity for evaluation; expected a non-negative "
                f"integer, found {found}",
            )
        first_line[_nfc(image)] = line
        images.append(image)
        pids.append(pid)
        camids.append(camid)
        splits.append(split)
        lines.append(line)
    if not images:
        raise _fail(csv_path, 1, f"header only; expected rows of images below the header ({_EXPECTED_HEADER})")
    _check_splits(csv_path, splits, pids, camids, lines)
    images = _match_images(csv_path, images_path, images, lines)

    return index_table(zip(images, pids, camids, splits), sort_by_image=False)
