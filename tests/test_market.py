"""Tests for iics.market (Market-1501 zip indexing) and iics.image_cache."""

from __future__ import annotations

import errno
import io
import os
import re
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image

from iics import image_cache
from iics.image_cache import ImageCacheError, build_image_cache, decode_image, load_image_cache
from iics.image_source import ImageSource
from iics.market import EXPECTED_LAYOUT, EXPECTED_NAME, MarketFormatError, index_market_zip, parse_market_name


def jpeg_bytes(colour=(200, 30, 40), size=(20, 40), mode="RGB") -> bytes:
    """A solid-colour JPEG; size is (width, height) as in PIL."""
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def make_zip(path, members: dict) -> str:
    """Write a zip with the given {member name: bytes}; names ending in '/' are folders."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return str(path)


def add_again(zip_path, name: str, data: bytes) -> None:
    """Append another member of an existing name (zipfile warns, and reads only the last copy)."""
    with warnings.catch_warnings(), zipfile.ZipFile(zip_path, "a") as zf:
        warnings.simplefilter("ignore", UserWarning)
        zf.writestr(name, data)


TOP = "Market-1501-v15.09.15/"
LAYOUT = {
    TOP: b"",
    TOP + "bounding_box_train/": b"",
    TOP + "bounding_box_train/0007_c2s3_070952_01.jpg": jpeg_bytes((10, 20, 30)),
    TOP + "bounding_box_train/0002_c1s1_000451_03.jpg": jpeg_bytes((40, 50, 60)),
    TOP + "bounding_box_train/Thumbs.db": b"junk",
    TOP + "query/0003_c1s2_000123_01.jpg": jpeg_bytes(),
    TOP + "bounding_box_test/0003_c4s1_000200_02.jpg": jpeg_bytes(),
    TOP + "bounding_box_test/0000_c6s1_000001_01.jpg": jpeg_bytes(),
    TOP + "bounding_box_test/-1_c3s2_000123_01.jpg": jpeg_bytes(),
    TOP + "gt_bbox/0003_c1s2_000123_00.jpg": jpeg_bytes(),
    TOP + "readme.txt": b"hello",
    "__MACOSX/" + TOP + "query/._0003_c1s2_000123_01.jpg": b"\x00\x05",
}


# --- parse_market_name --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("0002_c1s1_000451_03.jpg", (2, 1)),
        ("-1_c3s2_000123_01.jpg", (-1, 3)),
        ("0000_c6s1_000001_01.jpg", (0, 6)),
        ("Market/bounding_box_test/1501_c6s4_001877_02.jpg", (1501, 6)),
        ("0005_c2_f0046985.jpg", (5, 2)),
        ("0002_c1s1_000451_03.png", (2, 1)),
        ("cuhk03-np/detected/query/0003_c2_27.png", (3, 2)),  # CUHK03-NP names
        ("0001_c1_1.PNG", (1, 1)),
    ],
)
def test_parse_market_name(name, expected):
    assert parse_market_name(name) == expected


@pytest.mark.parametrize("name", ["Thumbs.db", "0002_1s1_000451_03.jpg", "abc_c1s1_000451_03.jpg",
                                  "0002_c1s1_000451_03.gif", "0002_c0s1_000451_03.jpg", "-2_c1s1_000001_01.jpg"])
def test_parse_market_name_rejects(name):
    with pytest.raises(ValueError) as err:
        parse_market_name(name)
    message = str(err.value)
    assert name in message
    assert "c<cam>" in message or "1-based" in message


@pytest.mark.parametrize("name", ["99999999999999999999_c1s1_000001_01.jpg", "0001_c99999999999999999999s1_000001_01.jpg",
                                  "9223372036854775808_c1s1_000001_01.jpg"])
def test_numbers_beyond_int64_are_one_line_naming_the_file(tmp_path, name):
    """The index stores pid and camid as int64: a larger number ended in an OverflowError traceback."""
    members = {**LAYOUT, TOP + "bounding_box_train/" + name: jpeg_bytes()}
    zip_path = make_zip(tmp_path / "big.zip", members)
    with pytest.raises(MarketFormatError) as err:
        index_market_zip(zip_path)
    assert str(err.value) == (f"{zip_path}: cannot parse image name '{TOP}bounding_box_train/{name}': pid and camera "
                              f"must be 64-bit integers (at most 9223372036854775807)")


# --- index_market_zip ---------------------------------------------------------------------


def test_index_market_zip(tmp_path):
    zip_path = make_zip(tmp_path / "market.zip", LAYOUT)
    index = index_market_zip(zip_path)
    assert list(index.columns) == ["image", "pid", "camid", "split"]
    assert list(index["split"]) == ["train", "train", "query", "gallery", "gallery"]
    assert list(index["image"]) == [
        TOP + "bounding_box_train/0002_c1s1_000451_03.jpg",
        TOP + "bounding_box_train/0007_c2s3_070952_01.jpg",
        TOP + "query/0003_c1s2_000123_01.jpg",
        TOP + "bounding_box_test/0000_c6s1_000001_01.jpg",
        TOP + "bounding_box_test/0003_c4s1_000200_02.jpg",
    ]
    assert list(index["pid"]) == [2, 7, 3, 0, 3]
    assert list(index["camid"]) == [1, 2, 1, 6, 4]
    assert -1 not in set(index["pid"])
    assert index["pid"].dtype == np.int64 and index["camid"].dtype == np.int64



@pytest.mark.parametrize("top", [TOP, ""])
def test_hidden_files_inside_the_split_folders_are_skipped(tmp_path, top):
    """An AppleDouble '._<crop>.jpg' or '.DS_Store' beside the crops (as macOS writes on a FAT
    disk) is no crop: skipped, not 'cannot parse image name'. The __MACOSX/ copy in LAYOUT lies
    outside the chosen folder, so it tested only the layout search."""
    members = {**market_at(top), top + "query/._0003_c1s2_000123_01.jpg": b"\x00\x05",
               top + "bounding_box_train/.DS_Store": b"\x00", top + "bounding_box_test/._0000_c6s1_000001_01.jpg": b"\x00"}
    index = index_market_zip(make_zip(tmp_path / "hidden.zip", members))
    assert list(index["image"]) == list(index_market_zip(make_zip(tmp_path / "plain.zip", market_at(top)))["image"])
    assert not any(image.rpartition("/")[2].startswith(".") for image in index["image"])

def test_index_without_top_folder(tmp_path):
    members = {name[len(TOP):]: data for name, data in LAYOUT.items() if name.startswith(TOP) and name != TOP}
    index = index_market_zip(make_zip(tmp_path / "flat.zip", members))
    assert index["image"].iloc[0] == "bounding_box_train/0002_c1s1_000451_03.jpg"
    assert len(index) == 5


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.zip"):
        index_market_zip(tmp_path / "nope.zip")


def test_not_a_zip(tmp_path):
    path = tmp_path / "fake.zip"
    path.write_text("this is not a zip file\n")
    with pytest.raises(ValueError, match="fake.zip.*not a readable zip"):
        index_market_zip(path)


def test_truncated_zip(tmp_path):
    full = make_zip(tmp_path / "full.zip", LAYOUT)
    data = open(full, "rb").read()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.zip.*not a readable zip"):
        index_market_zip(cut)


def test_missing_folder(tmp_path):
    members = {k: v for k, v in LAYOUT.items() if "/query/" not in k}
    with pytest.raises(ValueError, match=r"missing folder\(s\) query"):
        index_market_zip(make_zip(tmp_path / "noquery.zip", members))


def test_member_twice_in_the_zip_is_an_error(tmp_path):
    """The first copy of an image was lost and the second indexed twice, without a word."""
    zip_path = make_zip(tmp_path / "twice.zip", LAYOUT)
    add_again(zip_path, TOP + "query/0003_c1s2_000123_01.jpg", jpeg_bytes((0, 0, 0)))
    with pytest.raises(MarketFormatError) as err:
        index_market_zip(zip_path)
    assert str(err.value) == (f"{zip_path}: member '{TOP}query/0003_c1s2_000123_01.jpg' appears 2 times; expected "
                              f"each file once (only the last copy can be read)")


MISSING_ALL = ("missing folder(s) bounding_box_train, query, bounding_box_test; expected bounding_box_train/, "
               "query/ and bounding_box_test/ (Market-1501 layout)")


def test_backslash_separators_are_named_when_the_folders_are_missing(tmp_path):
    """A zip written with Windows separators was only 'missing folder(s)', though they were all there."""
    members = {name.replace("/", "\\"): data for name, data in LAYOUT.items() if not name.endswith("/")}
    zip_path = make_zip(tmp_path / "windows.zip", members)
    with pytest.raises(MarketFormatError) as err:
        index_market_zip(zip_path)
    assert str(err.value) == (
        f"{zip_path}: {MISSING_ALL}; the member names use '\\' between folders, e.g. "
        f"'Market-1501-v15.09.15\\bounding_box_test\\-1_c3s2_000123_01.jpg'; expected '/' "
        f"(zip the folders again with a tool that writes '/')")


def test_folders_differing_only_in_case_are_named_when_the_folders_are_missing(tmp_path):
    members = {name.replace("bounding_box_train/", "Bounding_Box_Train/").replace("/query/", "/QUERY/"): data
               for name, data in LAYOUT.items()}
    zip_path = make_zip(tmp_path / "case.zip", members)
    with pytest.raises(MarketFormatError) as err:
        index_market_zip(zip_path)
    assert str(err.value) == (
        f"{zip_path}: missing folder(s) bounding_box_train, query in {TOP}; expected {EXPECTED_LAYOUT}; found "
        f"{TOP}Bounding_Box_Train/, {TOP}QUERY/ (folder names are case-sensitive)")


def test_unparsable_name(tmp_path):
    members = dict(LAYOUT)
    members[TOP + "query/person_7.jpg"] = jpeg_bytes()
    with pytest.raises(ValueError, match="bad.zip.*person_7.jpg.*expected"):
        index_market_zip(make_zip(tmp_path / "bad.zip", members))


def test_empty_split(tmp_path):
    members = {k: v for k, v in LAYOUT.items() if "/bounding_box_test/" not in k}
    members[TOP + "bounding_box_test/"] = b""
    members[TOP + "bounding_box_test/Thumbs.db"] = b"junk"
    zip_path = make_zip(tmp_path / "empty.zip", members)
    with pytest.raises(MarketFormatError) as err:
        index_market_zip(zip_path)
    assert str(err.value) == (f"{zip_path}: folder {TOP}bounding_box_test/ has no usable .jpg or .png images "
                              f"(expected person crops named {EXPECTED_NAME})")


def test_split_of_junk_only_says_so(tmp_path):
    """A folder of junk crops only was said to have no usable images, as if it held none."""
    members = {k: v for k, v in LAYOUT.items() if "/bounding_box_test/" not in k}
    members[TOP + "bounding_box_test/-1_c1s1_000001_01.jpg"] = jpeg_bytes()
    members[TOP + "bounding_box_test/-1_c2s1_000001_01.jpg"] = jpeg_bytes()
    zip_path = make_zip(tmp_path / "junk.zip", members)
    with pytest.raises(MarketFormatError) as err:
        index_market_zip(zip_path)
    assert str(err.value) == (f"{zip_path}: folder {TOP}bounding_box_test/ has 2 image(s), all junk (pid -1, left "
                              f"out); expected at least one crop with a pid of 0 or more")


@pytest.mark.parametrize("name", [
    "bounding_box_train/0009_c1s1_000001_01.bmp", "query/0009_c1s1_000001_01.webp", "bounding_box_test/0009_c1s1_000001_01.TIF",
    "bounding_box_train/0009_c1s1_000001_01.tiff", "bounding_box_train/0009_c1s1_000001_01.gif",
    "bounding_box_train/cam1/0009_c1s1_000001_01.jpg", "bounding_box_test/extra/more/0009_c1s1_000001_01.png",
    # named like a crop, in a format no fixed list of extensions named: dropped without a word
    "query/0004_c1s2_000123_01.jpe", "query/0004_c1s2_000123_01.heif", "bounding_box_test/0004_c1s2_000123_01.jxl",
    "bounding_box_train/0004_c1s2_000123_01.jpg.part", "query/0004_c1s2_000123_01", "query/-1_c1s2_000123_01.JXL",
    # not named like a crop, in an image format Pillow reads: were ignored like readme.txt
    "bounding_box_train/person7.heif", "query/000person7.jxl", "bounding_box_test/person7.pnm", "query/000person7.JPE",
])
def test_images_that_would_be_left_out_are_an_error(tmp_path, name):
    """Other image formats, files named like a crop whatever their extension, and images in sub-folders
    of a split folder were dropped without a word."""
    members = {**LAYOUT, TOP + name: jpeg_bytes(), TOP + "query/0010_c2s1_000001_01.gif": jpeg_bytes()}
    zip_path = make_zip(tmp_path / "more.zip", members)
    with pytest.raises(MarketFormatError) as err:
        index_market_zip(zip_path)
    assert str(err.value) == (
        f"{zip_path}: 2 image file(s) in the split folders would be left out, the first '{TOP}{name}'; expected .jpg, "
        f".jpeg or .png crops directly inside {TOP}bounding_box_train/, {TOP}query/ and {TOP}bounding_box_test/ "
        f"(convert the others, or move them out of these folders)")


def test_other_files_in_split_folders_are_ignored_and_any_case_of_jpg_jpeg_png_is_read(tmp_path):
    members = {**LAYOUT, TOP + "query/readme.txt": b"notes", TOP + "bounding_box_test/attributes.mat": b"MATLAB",
               TOP + "bounding_box_train/sub/Thumbs.db": b"junk", TOP + "bounding_box_train/0008_c1s1_000001_01.JPG": jpeg_bytes(),
               TOP + "bounding_box_train/0009_c1s1_000001_01.jpeg": jpeg_bytes(), TOP + "query/0010_c2s1_000001_01.PNG": png_bytes()}
    index = index_market_zip(make_zip(tmp_path / "mixed.zip", members))
    assert len(index) == len(index_market_zip(make_zip(tmp_path / "plain.zip", LAYOUT))) + 3
    assert {TOP + "bounding_box_train/0008_c1s1_000001_01.JPG", TOP + "query/0010_c2s1_000001_01.PNG"} <= set(index["image"])


def png_bytes(colour=(30, 200, 40), size=(20, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def cuhk03np_members(colours={"detected": (30, 200, 40), "labeled": (200, 30, 40)}) -> dict:
    """A tiny zip in CUHK03-NP's layout: .png crops under cuhk03-np/detected/ and labeled/, each
    with the three Market folders (two cameras, pids from 0001, no junk or distractors)."""
    members = {"cuhk03-np/": b"", "cuhk03-np/README.md": b"CUHK03-NP"}
    for subset, colour in colours.items():
        image = png_bytes(colour)
        for name in ("bounding_box_train/0001_c1_1.png", "bounding_box_train/0001_c2_6.png",
                     "bounding_box_train/0002_c1_1.png", "query/0003_c1_22.png", "query/0003_c2_27.png",
                     "bounding_box_test/0003_c1_21.png", "bounding_box_test/0003_c2_28.png",
                     "bounding_box_test/0004_c2_30.png"):
            members[f"cuhk03-np/{subset}/{name}"] = image
    return members


def test_cuhk03np_needs_a_subset_and_names_the_candidates(tmp_path):
    zip_path = make_zip(tmp_path / "cuhk03-np.zip", cuhk03np_members())
    with pytest.raises(MarketFormatError) as err:
        index_market_zip(zip_path)
    assert str(err.value) == (
        f"{zip_path}: several folders hold bounding_box_train/, query/ and bounding_box_test/ (Market-1501 layout): "
        f"cuhk03-np/detected/, cuhk03-np/labeled/; set dataset.subset to the one to index (detected or labeled), "
        f"e.g. -S dataset.subset=detected")


@pytest.mark.parametrize("subset, folder", [
    ("detected", "cuhk03-np/detected/"), ("labeled", "cuhk03-np/labeled/"), ("cuhk03-np/labeled/", "cuhk03-np/labeled/"),
])
def test_cuhk03np_subset_is_indexed_and_decoded(tmp_path, subset, folder):
    zip_path = make_zip(tmp_path / "cuhk03-np.zip", cuhk03np_members())
    index = index_market_zip(zip_path, subset=subset)
    assert all(image.startswith(folder) for image in index["image"])
    assert list(index["split"]) == ["train"] * 3 + ["query"] * 2 + ["gallery"] * 3
    assert list(index["pid"]) == [1, 1, 2, 3, 3, 3, 3, 4]
    assert list(index["camid"]) == [1, 2, 1, 1, 2, 1, 2, 2]
    build_image_cache(zip_path, list(index["image"]), 8, 4, tmp_path / "cache.npy", progress=False)
    cache = load_image_cache(tmp_path / "cache.npy")
    expected_red = 200 if "labeled" in folder else 30
    assert cache.shape == (8, 8, 4, 3) and abs(int(cache[0, 4, 2, 0]) - expected_red) <= 2


def test_unknown_subset_lists_the_folders_there_are(tmp_path):
    zip_path = make_zip(tmp_path / "cuhk03-np.zip", cuhk03np_members())
    with pytest.raises(MarketFormatError, match=r"cuhk03-np.zip: dataset.subset is 'detcted' but no such folder holds "
                                                r".*; folders that do: cuhk03-np/detected/, cuhk03-np/labeled/$"):
        index_market_zip(zip_path, subset="detcted")
    with pytest.raises(MarketFormatError, match=r"dataset.subset is 'detected' .* folders that do: Market-1501-v15.09.15/$"):
        index_market_zip(make_zip(tmp_path / "market.zip", LAYOUT), subset="detected")


def test_one_subset_needs_no_choice_and_may_name_it(tmp_path):
    members = cuhk03np_members({"detected": (30, 200, 40)})
    zip_path = make_zip(tmp_path / "detected_only.zip", members)
    assert len(index_market_zip(zip_path)) == len(index_market_zip(zip_path, subset="detected")) == 8
    market = make_zip(tmp_path / "market.zip", LAYOUT)
    assert index_market_zip(market, subset="Market-1501-v15.09.15").equals(index_market_zip(market))


def market_at(top: str) -> dict:
    """LAYOUT's files under the folder ``top`` ('' for the zip root) instead of its own."""
    return {top + name[len(TOP):]: data for name, data in LAYOUT.items() if name.startswith(TOP) and name != TOP}


def advised_subsets(zip_path) -> list[str]:
    """The dataset.subset values the 'several folders' error offers."""
    with pytest.raises(MarketFormatError, match="several folders hold") as err:
        index_market_zip(zip_path)
    offered = re.search(r"set dataset.subset to the one to index \((.*)\), e.g. -S dataset.subset=(\S+)$", str(err.value))
    assert offered is not None, str(err.value)
    choices = offered.group(1).split(" or ")
    assert offered.group(2) == choices[0]
    return choices


@pytest.mark.parametrize("tops", [("", "backup/"), ("Market/", "backup/Market/"), ("a/detected/", "b/detected/", "c/")])
def test_every_subset_the_error_advises_selects_its_folder(tmp_path, tops):
    """The advice named '<zip root>', which no dataset.subset selected; '/' now does. Folders
    sharing a last part are advised by their whole path, which selects one."""
    zip_path = make_zip(tmp_path / "copies.zip", {name: data for top in tops for name, data in market_at(top).items()})
    choices = advised_subsets(zip_path)
    assert len(choices) == len(tops) and len(set(choices)) == len(choices)
    for top, choice in zip(sorted(tops), choices):
        index = index_market_zip(zip_path, subset=choice)
        assert len(index) == 5 and all(image.startswith(top) and image.count("/") == top.count("/") + 1
                                       for image in index["image"]), (choice, list(index["image"]))


def test_zip_root_and_backup_folder_advice_and_both_selections(tmp_path):
    zip_path = make_zip(tmp_path / "copies.zip", {**market_at(""), **market_at("backup/")})
    with pytest.raises(MarketFormatError) as err:
        index_market_zip(zip_path)
    assert str(err.value) == (
        f"{zip_path}: several folders hold bounding_box_train/, query/ and bounding_box_test/ (Market-1501 layout): "
        f"/ (the zip root), backup/; set dataset.subset to the one to index (/ or backup), e.g. -S dataset.subset=/")
    assert list(index_market_zip(zip_path, subset="/")["image"])[0] == "bounding_box_train/0002_c1s1_000451_03.jpg"
    assert list(index_market_zip(zip_path, subset="backup")["image"])[0] == "backup/bounding_box_train/0002_c1s1_000451_03.jpg"
    with pytest.raises(MarketFormatError, match=r"subset is '/' but no such folder .* folders that do: Market-1501-v15.09.15/$"):
        index_market_zip(make_zip(tmp_path / "market.zip", LAYOUT), subset="/")


def test_subset_missing_a_folder(tmp_path):
    members = {k: v for k, v in cuhk03np_members().items() if not k.startswith("cuhk03-np/labeled/query/")}
    zip_path = make_zip(tmp_path / "cuhk03-np.zip", members)
    with pytest.raises(MarketFormatError, match=r"missing folder\(s\) query in cuhk03-np/labeled/; expected"):
        index_market_zip(zip_path, subset="labeled")
    assert len(index_market_zip(zip_path, subset="detected")) == 8


# --- image cache --------------------------------------------------------------------------


def test_build_and_load_image_cache(tmp_path):
    members = {
        "d/red.jpg": jpeg_bytes((220, 20, 30), size=(50, 100)),
        "d/blue.jpg": jpeg_bytes((20, 40, 200), size=(16, 32)),
        "d/grey.jpg": jpeg_bytes(128, size=(30, 70), mode="L"),
    }
    zip_path = make_zip(tmp_path / "imgs.zip", members)
    out = tmp_path / "cache" / "images.npy"
    build_image_cache(zip_path, ["d/blue.jpg", "d/red.jpg", "d/grey.jpg"], 32, 16, out, progress=False)
    assert sorted(os.listdir(out.parent)) == ["images.npy"]
    cache = load_image_cache(out)
    assert isinstance(cache, np.memmap) and cache.shape == (3, 32, 16, 3) and cache.dtype == np.uint8
    expected = np.array([(20, 40, 200), (220, 20, 30), (128, 128, 128)], dtype=float)
    np.testing.assert_allclose(cache.reshape(3, -1, 3).mean(axis=1), expected, atol=6)
    assert cache.reshape(3, -1, 3).std(axis=1).max() < 3


def test_image_cache_corrupt_image_is_atomic(tmp_path):
    good = jpeg_bytes()
    members = {"a/good.jpg": good, "a/bad.jpg": good[: len(good) // 3]}
    zip_path = make_zip(tmp_path / "imgs.zip", members)
    out = tmp_path / "images.npy"
    with pytest.raises(ValueError, match="imgs.zip.*a/bad.jpg"):
        build_image_cache(zip_path, ["a/good.jpg", "a/bad.jpg"], 8, 4, out, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["imgs.zip"]


@pytest.mark.parametrize("data", [b"not an image", b""])
def test_image_no_decoder_knows_names_the_image_without_pillows_object_repr(tmp_path, data):
    """Pillow's message held '<_io.BytesIO object at 0x7f6d...>', which says nothing to the user."""
    zip_path = make_zip(tmp_path / "imgs.zip", {"a/good.jpg": jpeg_bytes(), "a/bad.jpg": data})
    with pytest.raises(ImageCacheError) as err:
        build_image_cache(zip_path, ["a/good.jpg", "a/bad.jpg"], 8, 4, tmp_path / "images.npy", progress=False)
    assert str(err.value) == (f"{zip_path}: cannot decode image 'a/bad.jpg' (in no image format Pillow reads: not an "
                              f"image, or damaged)")


def test_image_cache_missing_member(tmp_path):
    zip_path = make_zip(tmp_path / "imgs.zip", {"a/good.jpg": jpeg_bytes()})
    with pytest.raises(ValueError, match="a/gone.jpg"):
        build_image_cache(zip_path, ["a/gone.jpg"], 8, 4, tmp_path / "images.npy", progress=False)
    assert not (tmp_path / "images.npy").exists()


def test_image_cache_bad_zip(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="fake.zip"):
        build_image_cache(fake, ["x.jpg"], 8, 4, tmp_path / "images.npy", progress=False)
    with pytest.raises(FileNotFoundError, match="gone.zip"):
        build_image_cache(tmp_path / "gone.zip", ["x.jpg"], 8, 4, tmp_path / "images.npy", progress=False)


def test_load_image_cache_errors(tmp_path):
    with pytest.raises(ImageCacheError, match="missing.npy: no such image cache") as missing:
        load_image_cache(tmp_path / "missing.npy")
    assert missing.value.path == tmp_path / "missing.npy"
    np.save(tmp_path / "float.npy", np.zeros((2, 8, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        load_image_cache(tmp_path / "float.npy")
    np.save(tmp_path / "gray.npy", np.zeros((2, 8, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        load_image_cache(tmp_path / "gray.npy")
    (tmp_path / "junk.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="junk.npy"):
        load_image_cache(tmp_path / "junk.npy")


def test_image_cache_from_folder(tmp_path):
    folder = tmp_path / "crops"
    (folder / "cam1").mkdir(parents=True)
    (folder / "cam1" / "a.jpg").write_bytes(jpeg_bytes((200, 30, 40)))
    Image.new("RGB", (20, 40), (10, 220, 30)).save(folder / "b.png")
    out = tmp_path / "images.npy"
    build_image_cache(folder, ["b.png", "cam1/a.jpg"], 16, 8, out, progress=False)
    cache = load_image_cache(out)
    np.testing.assert_allclose(cache.reshape(2, -1, 3).mean(axis=1), [(10, 220, 30), (200, 30, 40)], atol=6)
    with pytest.raises(ValueError, match="crops.*'gone.jpg'"):
        build_image_cache(folder, ["gone.jpg"], 16, 8, out, progress=False)
    with pytest.raises(ValueError, match="crops.*'../images.npy'"):
        build_image_cache(folder, ["../images.npy"], 16, 8, out, progress=False)


def test_image_cache_blocks_equal_one_block(tmp_path):
    colours = [(10 * i, 255 - 20 * i, 7 * i) for i in range(7)]
    zip_path = make_zip(tmp_path / "imgs.zip", {f"x/{i}.jpg": jpeg_bytes(c) for i, c in enumerate(colours)})
    names = [f"x/{i}.jpg" for i in range(7)]
    build_image_cache(zip_path, names, 8, 4, tmp_path / "small.npy", progress=False, block=3)
    build_image_cache(zip_path, names, 8, 4, tmp_path / "whole.npy", progress=False, block=64)
    small, whole = np.load(tmp_path / "small.npy"), np.load(tmp_path / "whole.npy")
    assert small.shape == (7, 8, 4, 3) and np.array_equal(small, whole)
    np.testing.assert_allclose(small.reshape(7, -1, 3).mean(axis=1), colours, atol=6)


def test_image_cache_removes_leftovers_of_a_killed_run(tmp_path):
    zip_path = make_zip(tmp_path / "imgs.zip", {"a/good.jpg": jpeg_bytes()})
    out = tmp_path / "images.npy"
    (tmp_path / "images.npy.12345.tmp").write_bytes(b"half written")
    build_image_cache(zip_path, ["a/good.jpg"], 8, 4, out, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["images.npy", "imgs.zip"]


def encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


GREY16 = np.array([[0, 128, 129, 385, 1000, 30000, 65406, 65535]] * 2, dtype=np.uint16)


@pytest.mark.parametrize("name, data", [
    ("grey16.png", encoded(GREY16, "PNG")),                      # Pillow mode I;16
    ("grey16.tif", encoded(GREY16.astype(">u2"), "TIFF")),       # I;16B
    ("grey16.pgm", b"P5\n8 2\n65535\n" + GREY16.astype(">u2").tobytes()),  # I, from a 16-bit format
], ids=["png", "tiff", "pgm"])
def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path, name, data):
    """Pillow's convert("RGB") clips 16-bit values at 255: a gradient came out almost white."""
    with ImageSource(make_zip(tmp_path / "grey.zip", {name: data})) as source:
        pixels = decode_image(source, name, 2, 8)
    expected = np.rint(GREY16 / 257).astype(np.uint8)  # 0 0 1 1 4 117 254 255: rounded, not truncated
    assert np.array_equal(pixels, np.repeat(expected[:, :, None], 3, axis=2))


@pytest.mark.parametrize("array, mode", [(GREY16.astype(np.int32) * 1000, "I"), (GREY16 / np.float32(65535), "F")])
def test_32_bit_integer_and_float_images_are_refused_naming_file_and_mode(tmp_path, array, mode):
    """Whether 32-bit values span 12, 16 or 32 bits cannot be told from the file: no guess."""
    zip_path = make_zip(tmp_path / "deep.zip", {"deep.tif": encoded(array, "TIFF")})
    with ImageSource(zip_path) as source, pytest.raises(ImageCacheError) as err:
        decode_image(source, "deep.tif", 2, 8)
    message = str(err.value)
    assert message.startswith(f"{zip_path}: cannot decode image 'deep.tif' (TIFF image of Pillow mode '{mode}'")
    assert "expected an 8-bit or 16-bit image" in message and "\n" not in message


def test_image_over_pillows_pixel_limit_is_one_line(tmp_path, monkeypatch):
    """Pillow refuses images over twice Image.MAX_IMAGE_PIXELS (or a header claiming such a size)
    with DecompressionBombError, which is no OSError; a low limit stands in for a huge image."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    zip_path = make_zip(tmp_path / "imgs.zip", {"a/huge.jpg": jpeg_bytes(size=(20, 40))})
    with pytest.raises(ImageCacheError) as err:
        build_image_cache(zip_path, ["a/huge.jpg"], 8, 4, tmp_path / "images.npy", progress=False)
    assert str(err.value).startswith(f"{zip_path}: cannot decode image 'a/huge.jpg' (Image size (800 pixels) exceeds")
    assert "\n" not in str(err.value) and sorted(os.listdir(tmp_path)) == ["imgs.zip"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG])
def test_image_cache_write_error_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, code):
    """A full disk (or a file over the size limit) while the cache is written: the temporary file is
    removed and the message names the cache and the OS error on one line."""
    class FullDisk(io.FileIO):
        def write(self, data):
            raise OSError(code, os.strerror(code))
    monkeypatch.setattr(image_cache, "open", FullDisk, raising=False)  # the module's open(), not the builtin
    zip_path = make_zip(tmp_path / "imgs.zip", {"a/good.jpg": jpeg_bytes()})
    out = tmp_path / "cache" / "images.npy"
    with pytest.raises(ImageCacheError, match=rf"^{out}: cannot write the image cache \({os.strerror(code)}\)$"):
        build_image_cache(zip_path, ["a/good.jpg"], 8, 4, out, progress=False)
    assert os.listdir(out.parent) == []
