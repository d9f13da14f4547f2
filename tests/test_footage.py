"""Tests for iics.footage (your own crops in a zip or folder, described by a CSV)."""

from __future__ import annotations

import errno
import io
import unicodedata
import zipfile

import pandas as pd
import pytest
from PIL import Image
from test_market import add_again

from iics.footage import UNLABELLED, FootageFormatError, index_footage
from iics.image_cache import build_image_cache
from iics.image_source import SourceError
from iics.index import has_evaluation_split, has_train_identities


def image_bytes(name: str, colour=(90, 140, 30)) -> bytes:
    """A tiny solid-colour image, PNG when the name says so, else JPEG."""
    buffer = io.BytesIO()
    kind = "PNG" if name.lower().endswith(".png") else "JPEG"
    Image.new("RGB", (6, 12), colour).save(buffer, format=kind)
    return buffer.getvalue()


def make_footage(tmp_path, rows, as_zip=True, images=None, csv_text=None):
    """Write a footage dataset under tmp_path and return (csv_path, images_path).

    ``rows`` are CSV lines (lists of cells), the header first; unless ``images`` lists the
    files to create, every non-empty cell of the ``image`` column (else the first column) is
    written as an image. ``csv_text`` replaces the CSV wholesale. The images go into
    ``images.zip`` or an ``images/`` folder.
    """
    if images is None:
        column = rows[0].index("image") if "image" in rows[0] else 0
        images = [row[column] for row in rows[1:] if row[column]]
    csv_path = tmp_path / "images.csv"
    if csv_text is None:
        csv_text = "".join(",".join(row) + "\n" for row in rows)
    csv_path.write_text(csv_text, encoding="utf-8")
    if as_zip:
        images_path = tmp_path / "images.zip"
        with zipfile.ZipFile(images_path, "w") as zf:
            for name in images:
                zf.writestr(name, image_bytes(name))
    else:
        images_path = tmp_path / "images"
        images_path.mkdir()
        for name in images:
            target = images_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(image_bytes(name))
    return str(csv_path), str(images_path)


def expected_frame(rows) -> pd.DataFrame:
    """The index table for (image, pid, camid, split) tuples, with the documented dtypes."""
    frame = pd.DataFrame(rows, columns=["image", "pid", "camid", "split"])
    frame["image"] = frame["image"].astype(str)
    frame["pid"] = frame["pid"].astype("int64")
    frame["camid"] = frame["camid"].astype("int64")
    frame["split"] = frame["split"].astype(str)
    return frame


TRAIN_ONLY = [
    ["image", "camid"],
    ["cam3/day1/p_0007.jpg", "3"],
    ["cam1/a.png", "1"],
    ["cam10/b.JPG", "10"],
]

LABELLED = [
    ["camid", "split", "image", "pid"],
    ["2", "gallery", "gal/x_1.jpg", "5"],
    ["1", "train", "train/cam1/0001.jpg", "1"],
    ["1", "query", "q/5_c1.jpg", "5"],
    ["4", "", "train/cam4/0002.png", ""],
    ["2", "gallery", "gal/x_0.jpg", "0"],
    ["0", "Train ", "train/cam0/0003.jpg", "12"],
]


# --- indexing -----------------------------------------------------------------------------


@pytest.mark.parametrize("as_zip", [True, False])
def test_train_only(tmp_path, as_zip):
    csv_path, images_path = make_footage(tmp_path, TRAIN_ONLY, as_zip=as_zip)
    index = index_footage(csv_path, images_path)
    expected = expected_frame([
        ("cam3/day1/p_0007.jpg", UNLABELLED, 3, "train"),
        ("cam1/a.png", UNLABELLED, 1, "train"),
        ("cam10/b.JPG", UNLABELLED, 10, "train"),
    ])
    pd.testing.assert_frame_equal(index, expected)
    assert UNLABELLED == -1
    assert not has_evaluation_split(index)
    assert not has_train_identities(index)


@pytest.mark.parametrize("as_zip", [True, False])
def test_labelled_with_splits(tmp_path, as_zip):
    csv_path, images_path = make_footage(tmp_path, LABELLED, as_zip=as_zip)
    index = index_footage(csv_path, images_path)
    expected = expected_frame([
        ("train/cam1/0001.jpg", 1, 1, "train"),
        ("train/cam4/0002.png", UNLABELLED, 4, "train"),
        ("train/cam0/0003.jpg", 12, 0, "train"),
        ("q/5_c1.jpg", 5, 1, "query"),
        ("gal/x_1.jpg", 5, 2, "gallery"),
        ("gal/x_0.jpg", 0, 2, "gallery"),
    ])
    pd.testing.assert_frame_equal(index, expected)
    assert list(index.index) == list(range(6))
    assert has_evaluation_split(index)
    assert not has_train_identities(index)  # one train row is unlabelled


def test_fully_labelled_train(tmp_path):
    rows = [["image", "pid", "camid"], ["a.jpg", "3", "1"], ["b.jpg", "0", "2"]]
    index = index_footage(*make_footage(tmp_path, rows, as_zip=False))
    assert has_train_identities(index)
    assert not has_evaluation_split(index)


def test_source_may_hold_extra_files_and_csv_tolerates_blank_lines(tmp_path):
    csv_text = "\ufeffImage , CAMID\n\nb.jpg, 2\n\"dir,with comma/c.jpg\",7\n\n"
    csv_path, images_path = make_footage(
        tmp_path, None, images=["b.jpg", "dir,with comma/c.jpg", "unused/d.jpg"], csv_text=csv_text,
    )
    index = index_footage(csv_path, images_path)
    expected = expected_frame([("b.jpg", -1, 2, "train"), ("dir,with comma/c.jpg", -1, 7, "train")])
    pd.testing.assert_frame_equal(index, expected)


def test_has_helpers_on_plain_frames():
    frame = expected_frame([("a", 1, 1, "train"), ("b", 2, 1, "query"), ("c", 2, 2, "gallery")])
    assert has_evaluation_split(frame) and has_train_identities(frame)
    assert not has_evaluation_split(frame[frame["split"] != "gallery"])
    assert not has_evaluation_split(frame.assign(camid=1))  # the only match is in the query's camera
    assert not has_train_identities(frame[frame["split"] != "train"])


# --- errors -------------------------------------------------------------------------------


def raises_at(line):
    """pytest.raises for a FootageFormatError naming images.csv and the given line."""
    return pytest.raises(FootageFormatError, match=rf"^\S*images\.csv: line {line}: ")


def check_one_line(err):
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "header, message",
    [
        (["image"], r"missing required column\(s\) 'camid'"),
        (["camid", "pid"], r"missing required column\(s\) 'image'"),
        (["image", "camera"], r"missing required column\(s\) 'camid'; unknown column\(s\) 'camera'"),
        (["image", "camid", "label"], r"unknown column\(s\) 'label'; expected columns image, camid"),
        (["image", "camid", "camid"], r"repeated column\(s\) 'camid'"),
    ],
)
def test_bad_header(tmp_path, header, message):
    rows = [header, ["a.jpg"] + ["1"] * (len(header) - 1)]
    with raises_at(1) as err:
        index_footage(*make_footage(tmp_path, rows))
    assert err.match(message)
    check_one_line(err)


@pytest.mark.parametrize(
    "camid, message",
    [
        ("x", "camid: expected a non-negative integer, found 'x'"),
        ("-2", "camid: expected a non-negative integer, found '-2'"),
        ("1.5", "camid: expected a non-negative integer, found '1.5'"),
        ("", "camid: expected a non-negative integer, found an empty cell"),
        ("NA", "camid: expected a non-negative integer, found 'NA'"),
        # beyond int64: 'expected a non-negative integer' alone contradicted what was found
        ("9223372036854775808", "camid: expected a non-negative integer of at most 9223372036854775807, "
                                "found '9223372036854775808'$"),
        ("99999999999999999999", "camid: expected a non-negative integer of at most 9223372036854775807, "
                                 "found '99999999999999999999'$"),
        ("7" * 5000, f"camid: expected a non-negative integer of at most 9223372036854775807, found '{'7' * 37}...'$"),
    ],
)
def test_bad_camid(tmp_path, camid, message):
    rows = [["image", "camid"], ["a.jpg", "1"], ["b.jpg", "2"], ["c.jpg", camid]]
    with raises_at(4) as err:
        index_footage(*make_footage(tmp_path, rows))
    assert err.match(message)


@pytest.mark.parametrize("pid", ["-1", "abc", "3.0", "NaN"])
def test_bad_pid(tmp_path, pid):
    rows = [["image", "camid", "pid"], ["a.jpg", "1", "4"], ["b.jpg", "2", pid]]
    with raises_at(3) as err:
        index_footage(*make_footage(tmp_path, rows))
    assert err.match(rf"pid: expected a non-negative integer \(or an empty cell .*\), found '{pid}'")


def test_pid_beyond_int64_names_the_limit(tmp_path):
    rows = [["image", "camid", "pid"], ["a.jpg", "1", "4"], ["b.jpg", "2", "99999999999999999999"]]
    with raises_at(3) as err:
        index_footage(*make_footage(tmp_path, rows))
    assert err.match(r"pid: expected a non-negative integer of at most 9223372036854775807 \(or an empty cell for an "
                     r"unlabelled image\), found '99999999999999999999'$")


def test_unknown_split(tmp_path):
    rows = [["image", "camid", "pid", "split"], ["a.jpg", "1", "", "train"], ["b.jpg", "2", "3", "test"]]
    with raises_at(3) as err:
        index_footage(*make_footage(tmp_path, rows))
    assert err.match("split: expected train, query or gallery .* found 'test'")


def test_duplicate_image(tmp_path):
    rows = [["image", "camid"], ["a.jpg", "1"], ["b.jpg", "1"], ["a.jpg", "2"]]
    with raises_at(4) as err:
        index_footage(*make_footage(tmp_path, rows, images=["a.jpg", "b.jpg"]))
    assert err.match("duplicate image 'a.jpg', first listed on line 2")


def test_image_twice_in_the_zip_is_an_error(tmp_path):
    """zipfile reads only the last of two members of one name: the other image was lost unseen."""
    csv_path, images_path = make_footage(tmp_path, TRAIN_ONLY)
    add_again(images_path, "cam1/a.png", image_bytes("a.png", (0, 0, 0)))
    with pytest.raises(ValueError) as err:
        index_footage(csv_path, images_path)
    assert str(err.value) == (f"{images_path}: member 'cam1/a.png' appears 2 times; expected each file once "
                              f"(only the last copy can be read)")


@pytest.mark.parametrize("as_zip", [True, False])
def test_missing_images(tmp_path, as_zip):
    rows = [["image", "camid"]] + [[f"cam1/{i}.jpg", "1"] for i in range(9)]
    present = ["__MACOSX/cam1/._0.jpg", "cam1/.DS_Store", "cam1/0.jpg", "cam1/2.jpg"]  # the example skips hidden files
    csv_path, images_path = make_footage(tmp_path, rows, as_zip=as_zip, images=present)
    with raises_at(3) as err:
        index_footage(csv_path, images_path)
    message = str(err.value)
    assert "7 of 9 listed image(s) not found" in message
    assert images_path in message
    assert "line 3 'cam1/1.jpg', line 5 'cam1/3.jpg'" in message
    assert "line 8 'cam1/6.jpg' and 2 more;" in message and "'cam1/7.jpg'" not in message
    assert "e.g. 'cam1/0.jpg'" in message
    check_one_line(err)


def test_missing_image_with_backslash(tmp_path):
    rows = [["image", "camid"], ["cam1\\a.jpg", "1"]]
    with raises_at(2) as err:
        index_footage(*make_footage(tmp_path, rows, as_zip=False, images=["cam1/a.jpg"]))
    assert err.match(r"not found in folder .*use '/' between folders")


@pytest.mark.parametrize("cell", [" cam1/b.jpg", "cam1/b.jpg  ", "\tcam1/b.jpg"])
def test_missing_image_with_spaces_around_it_says_so(tmp_path, cell):
    """'2, cam1/b.jpg' (a space after the comma) was 'not found' with no word on why: camid, pid and
    split are stripped, image is not (a file name may start or end with a space)."""
    rows = [["camid", "image"], ["1", "cam1/a.jpg"], ["2", cell]]
    with raises_at(3) as err:
        index_footage(*make_footage(tmp_path, rows, images=["cam1/a.jpg", "cam1/b.jpg"]))
    assert str(err.value).endswith(f"; line 3 {cell!r} has spaces around the name and 'cam1/b.jpg' exists: "
                                   f"remove them from the CSV")
    check_one_line(err)


def test_name_with_a_leading_space_is_read_as_given(tmp_path):
    rows = [["image", "camid"], [" a.jpg", "1"], ["b.jpg", "2"]]
    index = index_footage(*make_footage(tmp_path, rows, as_zip=False, images=[" a.jpg", "b.jpg"]))
    assert list(index["image"]) == [" a.jpg", "b.jpg"]


NFC, NFD = unicodedata.normalize("NFC", "caméra 1/zoë.jpg"), unicodedata.normalize("NFD", "caméra 1/zoë.jpg")


@pytest.mark.parametrize("as_zip", [True, False])
def test_names_equal_under_unicode_nfc_match_and_the_source_spelling_is_kept(tmp_path, as_zip):
    """A CSV typed in NFC against names a Mac wrote in NFD: alike on screen, 'not found' before."""
    assert NFC != NFD
    rows = [["image", "camid"], [NFC, "1"], ["b.jpg", "2"]]
    csv_path, images_path = make_footage(tmp_path, rows, as_zip=as_zip, images=[NFD, "b.jpg"])
    index = index_footage(csv_path, images_path)
    assert list(index["image"]) == [NFD, "b.jpg"]  # the name the source can read
    build_image_cache(images_path, list(index["image"]), 8, 4, tmp_path / "images.npy", progress=False)


def test_exact_name_wins_over_a_unicode_alike(tmp_path):
    rows = [["image", "camid"], [NFD, "1"], ["b.jpg", "2"]]
    index = index_footage(*make_footage(tmp_path, rows, as_zip=False, images=[NFC, NFD, "b.jpg"]))
    assert list(index["image"]) == [NFD, "b.jpg"]


def test_spaces_hint_holds_for_a_unicode_alike(tmp_path):
    rows = [["camid", "image"], ["1", " " + NFC], ["2", "b.jpg"]]
    with raises_at(2) as err:
        index_footage(*make_footage(tmp_path, rows, images=[NFD, "b.jpg"]))
    assert err.match(f"has spaces around the name and {NFC!r} exists: remove them from the CSV$")


def test_names_equal_under_unicode_nfc_are_one_image(tmp_path):
    rows = [["image", "camid"], [NFC, "1"], ["b.jpg", "2"], [NFD, "2"]]
    with raises_at(4) as err:
        index_footage(*make_footage(tmp_path, rows, images=[NFD, "b.jpg"]))
    assert err.match("duplicate image .*, first listed on line 2; expected each image once")


def test_empty_image_cell(tmp_path):
    rows = [["camid", "image"], ["1", "a.jpg"], ["2", ""]]
    with raises_at(3) as err:
        index_footage(*make_footage(tmp_path, rows))
    assert err.match("image: expected a path .* found an empty cell")


def test_no_train_rows(tmp_path):
    rows = [["image", "camid", "pid", "split"], ["a.jpg", "1", "1", "query"], ["b.jpg", "2", "1", "gallery"]]
    with raises_at("2-3") as err:
        index_footage(*make_footage(tmp_path, rows))
    assert err.match(r"no train rows; expected .*split 'train'.* found 1 query, 1 gallery$")


@pytest.mark.parametrize("present, absent", [("query", "gallery"), ("gallery", "query")])
def test_query_without_gallery(tmp_path, present, absent):
    rows = [["image", "camid", "pid", "split"], ["a.jpg", "1", "", ""], ["b.jpg", "2", "1", present]]
    with raises_at(3) as err:
        index_footage(*make_footage(tmp_path, rows))
    assert err.match(f"{present} rows but no {absent} rows; .* {absent} is missing")


def test_queries_without_a_match_in_another_camera(tmp_path):
    rows = [["image", "camid", "pid", "split"], ["a.jpg", "1", "", ""],
            ["g1.jpg", "1", "5", "gallery"],   # pid 5's only gallery image is in camera 1
            ["q1.jpg", "1", "5", "query"],
            ["q2.jpg", "2", "6", "query"],     # pid 6 has no gallery image
            ["g2.jpg", "2", "7", "gallery"],
            ["q3.jpg", "2", "7", "query"]]     # pid 7's only gallery image is in camera 2
    with raises_at(4) as err:
        index_footage(*make_footage(tmp_path, rows))
    assert err.match(r"0 of 3 query images have a gallery image of the same pid from another camera; "
                     r"evaluation needs at least one")
    check_one_line(err)
    rows[2][1] = "3"  # now q1 has a match: enough to evaluate
    fixed = tmp_path / "fixed"
    fixed.mkdir()
    assert has_evaluation_split(index_footage(*make_footage(fixed, rows)))


@pytest.mark.parametrize("split", ["query", "gallery"])
def test_evaluation_rows_need_pid(tmp_path, split):
    rows = [["image", "camid", "pid", "split"], ["a.jpg", "1", "", ""], ["b.jpg", "2", " ", split]]
    with raises_at(3) as err:
        index_footage(*make_footage(tmp_path, rows))
    assert err.match(f"pid: {split} images need an identity .* found an empty cell")
    no_pid_column = tmp_path / "no_pid_column"
    no_pid_column.mkdir()
    rows = [["image", "camid", "split"], ["a.jpg", "1", ""], ["b.jpg", "2", split]]
    with raises_at(3) as err:
        index_footage(*make_footage(no_pid_column, rows))
    assert err.match("found no pid column")


def test_header_only(tmp_path):
    with raises_at(1) as err:
        index_footage(*make_footage(tmp_path, [["image", "camid"]]))
    assert err.match("header only")


def test_empty_file(tmp_path):
    with raises_at(1) as err:
        index_footage(*make_footage(tmp_path, None, images=[], csv_text=""))
    assert err.match("empty file; expected a header row")


def test_blank_first_line_is_a_missing_header_not_an_empty_file(tmp_path):
    csv_text = "\nimage,camid\na.jpg,1\n"
    with raises_at(1) as err:
        index_footage(*make_footage(tmp_path, None, images=["a.jpg"], csv_text=csv_text))
    assert err.match(r"line 1: no header on line 1 \(found a blank line\); expected a header row with columns image, camid")
    assert "empty file" not in str(err.value)
    check_one_line(err)


def test_too_many_fields(tmp_path):
    rows = [["image", "camid"], ["a.jpg", "1"], ["b.jpg", "2", "3"]]
    with raises_at(3) as err:
        index_footage(*make_footage(tmp_path, rows, images=["a.jpg", "b.jpg"]))
    assert err.match("expected 2 comma-separated fields as in the header, found 3")


@pytest.mark.parametrize("csv_text, line", [
    ('image,camid\n"odd\nname.jpg",1\nb.jpg,2,3\n', 4),                 # pandas says record 3
    ('image,camid\n\n"odd\nlong\nname.jpg",1\n\nb.jpg,2,3\n', 7),       # pandas says record 5
    ('image,camid\na.jpg,1\n"odd\nname.jpg",2,3\n', 3),                 # the ragged row is the multi-line one
])
def test_ragged_row_after_multiline_cell_names_its_file_line(tmp_path, csv_text, line):
    csv_path, images_path = make_footage(tmp_path, None, images=["a.jpg", "b.jpg"], csv_text=csv_text)
    with raises_at(line) as err:
        index_footage(csv_path, images_path)
    assert err.match("expected 2 comma-separated fields as in the header, found 3")
    check_one_line(err)


@pytest.mark.parametrize("csv_text, line", [
    ('image,camid\na.jpg,1\nb.jpg,2\n"c.jpg,3\nd.jpg,4\n', 4),            # pandas said 'row 3'
    ('image,camid\n\n"odd\nname.jpg",1\n\n"c.jpg,3\nd.jpg,4\n', 6),      # blank lines and a multi-line cell before
    ('image,camid\na.jpg,1\nb.jpg,"2', 3),                                  # in the last cell of the last line
    ('image,camid\nb"x.jpg,1\n"a""b.jpg,2\n', 3),                          # a quote inside a cell, and "" inside quotes
    ('image,camid\n"odd\nname.jpg","1\nb.jpg,2\n', 3),                    # after a closed multi-line cell in its row
])
def test_unclosed_quote_names_the_line_it_opens_on(tmp_path, csv_text, line):
    csv_path, images_path = make_footage(tmp_path, None, images=["a.jpg"], csv_text=csv_text)
    with pytest.raises(FootageFormatError) as err:
        index_footage(csv_path, images_path)
    assert str(err.value) == (f'{csv_path}: line {line}: a quote is opened and never closed; expected a closing " '
                              f'at the end of the quoted cell (a quote within it written as "")')


def test_line_numbers_count_blank_and_multiline_cells(tmp_path):
    csv_text = 'image,camid\n\n"odd\nname.jpg",1\nb.jpg,x\n'
    csv_path, images_path = make_footage(tmp_path, None, images=["odd\nname.jpg", "b.jpg"], csv_text=csv_text)
    with raises_at(5):
        index_footage(csv_path, images_path)


def test_missing_csv_or_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        index_footage(tmp_path / "nope.csv", tmp_path)
    csv_path, _ = make_footage(tmp_path, TRAIN_ONLY)
    with pytest.raises(FileNotFoundError, match="gone.zip"):
        index_footage(csv_path, tmp_path / "gone.zip")


def test_unreadable_zip_is_a_source_error_naming_it(tmp_path):
    """As index_footage's docstring says: a SourceError (a ValueError) naming the zip, not the CSV."""
    csv_path, images_path = make_footage(tmp_path, TRAIN_ONLY)
    with open(images_path, "r+b") as f:
        f.truncate(40)
    with pytest.raises(SourceError) as err:
        index_footage(csv_path, images_path)
    assert str(err.value) == f"{images_path}: not a readable zip file (File is not a zip file)"
    assert not isinstance(err.value, FootageFormatError) and isinstance(err.value, ValueError)


def test_unreadable_csv_is_one_line(tmp_path, monkeypatch):
    """As for a CSV without read permission (faked: the tests may run as root, who may read anything)."""
    csv_path, images_path = make_footage(tmp_path, [["image", "camid"], ["a.jpg", "1"]])

    def denied(path, **options):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))
    monkeypatch.setattr(pd, "read_csv", denied)
    with pytest.raises(FootageFormatError, match=rf"^{csv_path}: cannot read the file \(Permission denied\)$"):
        index_footage(csv_path, images_path)


def test_is_a_value_error():
    assert issubclass(FootageFormatError, ValueError)
