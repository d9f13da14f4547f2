"""Tests for iics.msmt17 (indexing the official MSMT17 V2 zip)."""

from __future__ import annotations

import contextlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_image_source import DEFLATE64, ENCRYPTED, patch_central_entry
from test_market import add_again

from iics.image_source import ImageSource
from iics.msmt17 import Msmt17FormatError, index_msmt17_zip, parse_msmt17_name

TOP = "MSMT17_V2/"
TRAIN = [
    ("0001/0001_000_05_0303noon_0100_1.jpg", 1),
    ("0000/0000_000_01_0303morning_0008_0.jpg", 0),
    ("0000/0000_001_01_0303morning_0008_0_ex.jpg", 0),
]
VAL = [
    ("0002/0002_004_15_0302afternoon_0039_0.jpg", 2),
    ("0000/0000_002_07_0303morning_0020_2.jpg", 0),
]
QUERY = [
    ("0001/0001_019_14_0113noon_0020_1.jpg", 1),
    ("0000/0000_000_01_0303morning_0015_0.jpg", 0),
]
GALLERY = [
    ("0001/0001_020_07_0303morning_0021_1.jpg", 1),
    ("0000/0000_030_14_0303morning_0245_0.jpg", 0),
    ("0001/0001_000_03_0303morning_0011_0.jpg", 1),
]
LIST_FOLDERS = {
    "list_train.txt": "mask_train_v2",
    "list_val.txt": "mask_train_v2",
    "list_query.txt": "mask_test_v2",
    "list_gallery.txt": "mask_test_v2",
}


def jpeg_bytes(colour=(200, 30, 40), size=(8, 16)) -> bytes:
    """A tiny solid-colour JPEG; size is (width, height) as in PIL."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_msmt17_zip(path, train=TRAIN, val=VAL, query=QUERY, gallery=GALLERY, *, top=TOP,
                    extra=None, omit=(), raw_lists=None) -> str:
    """Write a tiny zip in the official MSMT17 V2 layout and return its path.

    ``train`` / ``val`` / ``query`` / ``gallery`` are sequences of (path relative to the image
    folder, pid): each becomes a list line '<path> <pid>' and a tiny JPEG under
    ``<top>mask_train_v2/`` (train, val) or ``<top>mask_test_v2/`` (query, gallery).
    ``top`` is the folder prefix ('' for none). ``raw_lists`` maps a list file name to its
    exact text (its entries still get images). ``omit`` names members, relative to ``top``,
    to leave out; one ending in '/' drops everything under it. ``extra`` maps full member
    names to bytes, added last.
    """
    entries = {"list_train.txt": train, "list_val.txt": val, "list_query.txt": query, "list_gallery.txt": gallery}
    members: dict[str, bytes] = {}
    if top:
        members[top] = b""
    for folder in ("mask_train_v2", "mask_test_v2"):
        members[f"{top}{folder}/"] = b""
    image = jpeg_bytes()
    for list_name, pairs in entries.items():
        folder = LIST_FOLDERS[list_name]
        for relative, _ in pairs:
            subfolder = relative.rpartition("/")[0]
            if subfolder:
                members[f"{top}{folder}/{subfolder}/"] = b""
            members[f"{top}{folder}/{relative}"] = image
        text = "".join(f"{relative} {pid}\n" for relative, pid in pairs)
        if raw_lists and list_name in raw_lists:
            text = raw_lists[list_name]
        members[top + list_name] = text.encode()
    for name in omit:
        full = top + name
        members = {k: v for k, v in members.items() if not (k == full or (full.endswith("/") and k.startswith(full)))}
    members.update(extra or {})
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return str(path)


@contextlib.contextmanager
def raises_one_line(exc_type, zip_path, match):
    """pytest.raises that also checks the message is one line starting with the zip path."""
    with pytest.raises(exc_type, match=match) as info:
        yield info
    message = str(info.value)
    assert message.startswith(str(zip_path)), message
    assert "\n" not in message, message


# --- parse_msmt17_name --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("0000_000_01_0303morning_0015_0.jpg", 1),
        ("0114_019_10_0303noon_0284_2_ex.jpg", 10),
        ("3059_004_13_0113noon_1697_2.jpg", 13),
        ("MSMT17_V2/mask_test_v2/0002/0002_010_15_0302afternoon_0022_2.jpg", 15),
        ("mask_train_v2\\0000\\0000_000_01_0303morning_0008_0.JPG", 1),
    ],
)
def test_parse_msmt17_name(name, expected):
    assert parse_msmt17_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "readme.txt",
        "0002_c1s1_000451_03.jpg",
        "0000_000_01_0303morning_0015_0.png",
        "0000_000_01_0303morning_0015.jpg",
        "0000_000_xx_0303morning_0015_0.jpg",
        "abcd_000_01_0303morning_0015_0.jpg",
        "0000_000_00_0303morning_0015_0.jpg",
        "0000_000_16_0303morning_0015_0.jpg",
    ],
)
def test_parse_msmt17_name_rejects(name):
    with pytest.raises(ValueError) as err:
        parse_msmt17_name(name)
    message = str(err.value)
    assert name in message
    assert "<pid>_<index>_<cam>_<date><time>_<frame>_<n>.jpg" in message
    assert "0000_000_01_0303morning_0015_0.jpg" in message
    assert "\n" not in message


# --- index_msmt17_zip: valid layouts --------------------------------------------------------


def test_index_msmt17_zip(tmp_path):
    extra = {
        TOP + "mask_train_v2/0009/0009_000_02_0303morning_0001_0.jpg": jpeg_bytes(),  # in no list
        TOP + "readme.txt": b"hello",
        TOP + "mask_test_v2/.DS_Store": b"\x00",
        "__MACOSX/" + TOP + "._list_train.txt": b"\x00\x05",
        "__MACOSX/" + TOP + "list_query.txt": b"\xff\xfe",
    }
    index = index_msmt17_zip(make_msmt17_zip(tmp_path / "MSMT17_V2.zip", extra=extra))
    train, test = TOP + "mask_train_v2/", TOP + "mask_test_v2/"
    expected = pd.DataFrame(
        {
            "image": [
                train + "0000/0000_000_01_0303morning_0008_0.jpg",
                train + "0000/0000_001_01_0303morning_0008_0_ex.jpg",
                train + "0000/0000_002_07_0303morning_0020_2.jpg",
                train + "0001/0001_000_05_0303noon_0100_1.jpg",
                train + "0002/0002_004_15_0302afternoon_0039_0.jpg",
                test + "0000/0000_000_01_0303morning_0015_0.jpg",
                test + "0001/0001_019_14_0113noon_0020_1.jpg",
                test + "0000/0000_030_14_0303morning_0245_0.jpg",
                test + "0001/0001_000_03_0303morning_0011_0.jpg",
                test + "0001/0001_020_07_0303morning_0021_1.jpg",
            ],
            "pid": np.array([0, 0, 0, 1, 2, 0, 1, 0, 1, 1], dtype=np.int64),
            "camid": np.array([1, 1, 7, 5, 15, 1, 14, 14, 3, 7], dtype=np.int64),
            "split": ["train"] * 5 + ["query"] * 2 + ["gallery"] * 3,
        }
    )
    pd.testing.assert_frame_equal(index, expected)
    assert 0 in set(index.loc[index["split"] == "train", "pid"])
    assert index["pid"].dtype == np.int64 and index["camid"].dtype == np.int64


def test_list_text_tolerated(tmp_path):
    raw = {
        "list_train.txt": "\ufeff0000/0000_000_01_0303morning_0008_0.jpg 0\r\n\r\n"
                          "  0001/0001_000_05_0303noon_0100_1.jpg\t1   \r\n",
        "list_val.txt": "",
        "list_gallery.txt": "\n0000/0000_030_14_0303morning_0245_0.jpg 0",
    }
    zip_path = make_msmt17_zip(tmp_path / "crlf.zip", train=TRAIN[:2], val=[], gallery=GALLERY[1:2], raw_lists=raw)
    index = index_msmt17_zip(zip_path)
    assert list(index["split"]) == ["train", "train", "query", "query", "gallery"]
    assert list(index["pid"]) == [0, 1, 0, 1, 0]
    assert index["image"].iloc[1] == TOP + "mask_train_v2/0001/0001_000_05_0303noon_0100_1.jpg"


@pytest.mark.parametrize("top", ["", "msmt17/MSMT17_V2_copy/"])
def test_other_top_folders(tmp_path, top):
    zip_path = make_msmt17_zip(tmp_path / "other.zip", top=top)
    index = index_msmt17_zip(zip_path)
    assert len(index) == 10
    assert index["image"].iloc[0] == top + "mask_train_v2/0000/0000_000_01_0303morning_0008_0.jpg"


def test_extracted_folder(tmp_path):
    zip_path = make_msmt17_zip(tmp_path / "MSMT17_V2.zip")
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(tmp_path / "extracted")
    from_zip = index_msmt17_zip(zip_path)
    from_folder = index_msmt17_zip(tmp_path / "extracted")
    pd.testing.assert_frame_equal(from_folder, from_zip)


def test_reads_only_list_files(tmp_path, monkeypatch):
    zip_path = make_msmt17_zip(tmp_path / "MSMT17_V2.zip")
    read = []
    original = ImageSource.read

    def spy(self, name):
        read.append(name)
        return original(self, name)

    monkeypatch.setattr(ImageSource, "read", spy)
    index_msmt17_zip(zip_path)
    assert sorted(read) == sorted(TOP + n for n in LIST_FOLDERS)


# --- index_msmt17_zip: errors -----------------------------------------------------------------


@pytest.mark.parametrize("list_name", sorted(LIST_FOLDERS))
def test_missing_list_file(tmp_path, list_name):
    zip_path = make_msmt17_zip(tmp_path / "nolist.zip", omit=[list_name])
    with raises_one_line(Msmt17FormatError, zip_path, rf"missing list file\(s\) {list_name} in MSMT17_V2/"):
        index_msmt17_zip(zip_path)


def test_no_list_files_at_all(tmp_path):
    zip_path = make_msmt17_zip(tmp_path / "nolists.zip", omit=list(LIST_FOLDERS))
    with raises_one_line(Msmt17FormatError, zip_path, r"missing list file\(s\) list_train.txt, list_val.txt.*found none"):
        index_msmt17_zip(zip_path)


def test_list_files_in_several_folders(tmp_path):
    zip_path = make_msmt17_zip(tmp_path / "twice.zip", extra={"backup/list_val.txt": b""})
    with raises_one_line(Msmt17FormatError, zip_path, r"several folders \('MSMT17_V2/', 'backup/'\)"):
        index_msmt17_zip(zip_path)


def test_missing_image_folder(tmp_path):
    zip_path = make_msmt17_zip(tmp_path / "notest.zip", omit=["mask_test_v2/"])
    with raises_one_line(Msmt17FormatError, zip_path, r"missing image folder\(s\) MSMT17_V2/mask_test_v2/"):
        index_msmt17_zip(zip_path)


@pytest.mark.parametrize(
    "line",
    ["0000/0000_002_07_0303morning_0020_2.jpg", "0000/0000_002_07_0303morning_0020_2.jpg zero",
     "0000/0000_002_07_0303morning_0020_2.jpg 0 7", "0000/0000_002_07_0303morning_0020_2.jpg -1"],
)
def test_bad_list_line(tmp_path, line):
    raw = {"list_val.txt": "0002/0002_004_15_0302afternoon_0039_0.jpg 2\n" + line + "\n"}
    zip_path = make_msmt17_zip(tmp_path / "badline.zip", raw_lists=raw)
    with raises_one_line(Msmt17FormatError, zip_path, r"MSMT17_V2/list_val.txt line 2: expected '<relative path> <pid>'.*found"):
        index_msmt17_zip(zip_path)


def test_pid_beyond_int64_is_one_line(tmp_path):
    """The index stores pid as int64: a larger pid ended in an OverflowError traceback."""
    huge = "99999999999999999999"
    train = TRAIN + [(f"{huge}/{huge}_000_02_0303morning_0001_0.jpg", int(huge))]
    zip_path = make_msmt17_zip(tmp_path / "huge.zip", train=train)
    with raises_one_line(Msmt17FormatError, zip_path, rf"list_train.txt line 4: expected .*64-bit integer pid.*found '{huge}/.*\.jpg {huge}'$"):
        index_msmt17_zip(zip_path)


def test_list_not_text(tmp_path):
    zip_path = make_msmt17_zip(tmp_path / "binary.zip", extra={TOP + "list_query.txt": b"\xff\xfe\x00bad"})
    with raises_one_line(Msmt17FormatError, zip_path, "list file MSMT17_V2/list_query.txt is not UTF-8 text"):
        index_msmt17_zip(zip_path)


def test_corrupt_list_member(tmp_path):
    zip_path = make_msmt17_zip(tmp_path / "crc.zip")
    data = bytearray(Path(zip_path).read_bytes())
    line = b"0001/0001_019_14_0113noon_0020_1.jpg 1"
    at = data.index(line + b"\n0000/")  # the stored body of list_query.txt
    data[at] ^= 0x01
    Path(zip_path).write_bytes(bytes(data))
    with raises_one_line(Msmt17FormatError, zip_path, "cannot read member 'MSMT17_V2/list_query.txt'"):
        index_msmt17_zip(zip_path)


@pytest.mark.parametrize("offset, value, reason", [ENCRYPTED, DEFLATE64], ids=["encrypted", "deflate64"])
def test_list_member_zipfile_cannot_read(tmp_path, offset, value, reason):
    zip_path = make_msmt17_zip(tmp_path / "method.zip")
    patch_central_entry(zip_path, TOP + "list_val.txt", offset, value)
    with raises_one_line(Msmt17FormatError, zip_path, f"cannot read member 'MSMT17_V2/list_val.txt' .*{reason}"):
        index_msmt17_zip(zip_path)


def test_missing_image(tmp_path):
    gone = "0001/0001_000_03_0303morning_0011_0.jpg"
    zip_path = make_msmt17_zip(tmp_path / "noimage.zip", omit=["mask_test_v2/" + gone])
    with raises_one_line(
        Msmt17FormatError, zip_path, rf"list_gallery.txt line 3: image '{gone}' not in the zip.*mask_test_v2/"
    ):
        index_msmt17_zip(zip_path)


def test_image_in_wrong_folder(tmp_path):
    # a query entry whose image only exists under mask_train_v2/ is still missing
    moved = ("0005/0005_000_02_0303morning_0001_0.jpg", 5)
    extra = {TOP + "mask_train_v2/" + moved[0]: jpeg_bytes()}
    zip_path = make_msmt17_zip(tmp_path / "wrong.zip", query=QUERY + [moved], omit=["mask_test_v2/" + moved[0]],
                               extra=extra)
    with raises_one_line(Msmt17FormatError, zip_path, r"list_query.txt line 3: image .* not in the zip"):
        index_msmt17_zip(zip_path)


def test_unparsable_name(tmp_path):
    query = QUERY + [("0003/person_7.jpg", 3)]
    zip_path = make_msmt17_zip(tmp_path / "badname.zip", query=query)
    with raises_one_line(Msmt17FormatError, zip_path, r"list_query.txt line 3: cannot parse image name '0003/person_7.jpg'.*expected"):
        index_msmt17_zip(zip_path)


def test_pid_mismatch(tmp_path):
    train = TRAIN + [("0004/0004_000_02_0303morning_0001_0.jpg", 40)]
    zip_path = make_msmt17_zip(tmp_path / "pid.zip", train=train)
    with raises_one_line(Msmt17FormatError, zip_path, r"list_train.txt line 4: pid 40 in the list .* starts with 4;"):
        index_msmt17_zip(zip_path)


def test_duplicate_within_list(tmp_path):
    zip_path = make_msmt17_zip(tmp_path / "dup.zip", gallery=GALLERY + GALLERY[:1])
    with raises_one_line(
        Msmt17FormatError, zip_path,
        r"listed twice \(MSMT17_V2/list_gallery.txt line 1 and MSMT17_V2/list_gallery.txt line 4\)",
    ):
        index_msmt17_zip(zip_path)


def test_duplicate_across_train_and_val(tmp_path):
    zip_path = make_msmt17_zip(tmp_path / "dup.zip", val=VAL + TRAIN[1:2])
    with raises_one_line(
        Msmt17FormatError, zip_path,
        r"'MSMT17_V2/mask_train_v2/0000/0000_000_01_0303morning_0008_0.jpg' listed twice "
        r"\(MSMT17_V2/list_train.txt line 2 and MSMT17_V2/list_val.txt line 3\)",
    ):
        index_msmt17_zip(zip_path)


@pytest.mark.parametrize("split", ["train", "query", "gallery"])
def test_empty_split(tmp_path, split):
    lists = {"train": TRAIN, "val": VAL, "query": QUERY, "gallery": GALLERY}
    if split == "train":
        lists.update(train=[], val=[])
    else:
        lists[split] = []
    # the image folders still hold files, so only the split itself is empty
    extra = {TOP + "mask_test_v2/0000/0000_000_01_0303morning_0015_0.jpg": jpeg_bytes(),
             TOP + "mask_train_v2/0000/0000_000_01_0303morning_0008_0.jpg": jpeg_bytes()}
    zip_path = make_msmt17_zip(tmp_path / "empty.zip", **lists, extra=extra)
    with raises_one_line(Msmt17FormatError, zip_path, rf"split {split} is empty \(.*list_{'val' if split == 'train' else split}.txt"):
        index_msmt17_zip(zip_path)


def test_blank_lines_only_is_empty(tmp_path):
    zip_path = make_msmt17_zip(tmp_path / "blank.zip", raw_lists={"list_query.txt": "\n  \r\n\n"})
    with raises_one_line(Msmt17FormatError, zip_path, r"split query is empty \(MSMT17_V2/list_query.txt holds no entries\)"):
        index_msmt17_zip(zip_path)


def test_member_twice_in_the_zip_is_an_error(tmp_path):
    zip_path = make_msmt17_zip(tmp_path / "MSMT17_V2.zip")
    add_again(zip_path, f"{TOP}mask_test_v2/{QUERY[0][0]}", jpeg_bytes((0, 0, 0)))
    with pytest.raises(Msmt17FormatError) as err:
        index_msmt17_zip(zip_path)
    assert str(err.value) == (f"{zip_path}: member '{TOP}mask_test_v2/{QUERY[0][0]}' appears 2 times; expected "
                              f"each file once (only the last copy can be read)")


def test_truncated_zip(tmp_path):
    data = Path(make_msmt17_zip(tmp_path / "full.zip")).read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])
    with raises_one_line(Msmt17FormatError, cut, "cut.zip: not a readable zip.*expected the MSMT17 V2 zip"):
        index_msmt17_zip(cut)


def test_not_a_zip(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_text("this is not a zip file\n")
    with raises_one_line(ValueError, fake, "fake.zip: not a readable zip"):
        index_msmt17_zip(fake)


def test_missing_file(tmp_path):
    with raises_one_line(FileNotFoundError, tmp_path / "MSMT17_V2.zip", "MSMT17_V2.zip: no such file"):
        index_msmt17_zip(tmp_path / "MSMT17_V2.zip")
