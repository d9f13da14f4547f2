"""iics.datasets: which raw files each layout needs, and the official-release checks
(md5 and published counts) on tiny zips in each official layout."""
from __future__ import annotations

import dataclasses
import errno
import hashlib

import pandas as pd
import pytest
from test_footage import make_footage
from test_market import LAYOUT, TOP, cuhk03np_members, make_zip
from test_msmt17 import make_msmt17_zip

from iics import datasets
from iics.checksum import file_digest
from iics.datasets import DatasetError, check_official_counts, index_dataset, summarize


def md5_of(path) -> str:
    return hashlib.md5(open(path, "rb").read()).hexdigest()


@pytest.fixture
def tiny_market_release(tmp_path, monkeypatch):
    """data/market1501/raw/ holding a tiny Market-layout zip, registered as the official release."""
    raw = tmp_path / "market1501" / "raw"
    raw.mkdir(parents=True)
    zip_path = make_zip(raw / "Market-1501-v15.09.15.zip", LAYOUT)
    release = dataclasses.replace(
        datasets.OFFICIAL["market1501"], md5s=(md5_of(zip_path),),
        images={"train": 2, "query": 1, "gallery": 2}, train_ids=2, cameras=4,
    )
    monkeypatch.setitem(datasets.OFFICIAL, "market1501", release)
    return raw, release


def test_published_facts():
    market, duke, msmt = (datasets.OFFICIAL[n] for n in ("market1501", "dukemtmc", "msmt17"))
    assert market.images == {"train": 12936, "query": 3368, "gallery": 15913} and market.md5s == ("65005ab7d12ec1c44de4eeafe813e68a",)
    assert duke.images == {"train": 16522, "query": 2228, "gallery": 17661} and duke.md5s == ("2f93496f9b516d1ee5ef51c1d5e7d601", "62d8f3c7d6b2c5dc3d8ca6af7515847c")
    assert msmt.images == {"train": 32621, "query": 11659, "gallery": 82161} and msmt.layout == "msmt17"


def test_file_md5_streams_in_chunks(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 1000)
    assert file_digest(path, "md5", chunk_bytes=1000) == md5_of(path)


def test_official_release_passes_its_checks(tiny_market_release):
    raw, _ = tiny_market_release
    source, index = index_dataset(raw, "market1501", "market")
    assert source == raw / "Market-1501-v15.09.15.zip"
    assert summarize(index, "market") == {
        "train": {"images": 2, "ids": 2, "cameras": 2, "distractors": 0},
        "query": {"images": 1, "ids": 1, "cameras": 1, "distractors": 0},
        # the distractor (pid 0) is kept as an image but is no identity; junk (pid -1) is dropped
        "gallery": {"images": 2, "ids": 1, "cameras": 2, "distractors": 1},
    }


def test_distractors_are_no_identity_and_do_not_touch_the_train_count(tiny_market_release, monkeypatch):
    """Market's gallery has 751 test identities plus pid 0 distractors; the published checks count
    train identities (751), which hold no distractor, so they are unchanged."""
    raw, release = tiny_market_release
    _, index = index_dataset(raw, "market1501", "market")
    extra = index[index["split"] == "gallery"].assign(image=lambda f: f["image"] + ".copy", pid=0)
    with_more = pd.concat([index, extra], ignore_index=True)
    gallery = summarize(with_more, "market")["gallery"]
    assert (gallery["images"], gallery["ids"], gallery["distractors"]) == (4, 1, 3)
    check_official_counts(with_more, dataclasses.replace(release, images={**release.images, "gallery": 4}), "x.zip")
    monkeypatch.setitem(datasets.OFFICIAL, "market1501", dataclasses.replace(release, train_ids=3))
    with pytest.raises(DatasetError, match="train identities expected 3, found 2"):
        index_dataset(raw, "market1501", "market")
    assert summarize(index, "csv")["gallery"] == {"images": 2, "ids": 2, "cameras": 2}  # pid 0 is a person there


def test_wrong_md5_names_file_and_both_sums(tiny_market_release, monkeypatch):
    raw, release = tiny_market_release
    monkeypatch.setitem(datasets.OFFICIAL, "market1501", dataclasses.replace(release, md5s=("0" * 32,)))
    with pytest.raises(DatasetError, match=rf"Market-1501-v15.09.15.zip: md5 {md5_of(raw / release.zip_name)} .*expected 0{{32}}"):
        index_dataset(raw, "market1501", "market")


def test_every_published_md5_of_a_release_is_accepted(tiny_market_release, monkeypatch):
    """DukeMTMC-reID.zip circulates as two uploads with different md5s (2f93496f... and 62d8f3c7...);
    either one is the official release, and the counts are checked after it all the same."""
    raw, release = tiny_market_release
    found = md5_of(raw / release.zip_name)
    monkeypatch.setitem(datasets.OFFICIAL, "market1501", dataclasses.replace(release, md5s=("0" * 32, found)))
    index_dataset(raw, "market1501", "market")
    monkeypatch.setitem(datasets.OFFICIAL, "market1501", dataclasses.replace(release, md5s=("0" * 32, "1" * 32)))
    with pytest.raises(DatasetError, match=rf"md5 {found} .*expected 0{{32}} or 1{{32}}\)"):
        index_dataset(raw, "market1501", "market")


def test_unreadable_official_zip_is_one_line(tiny_market_release, monkeypatch):
    """Its md5 is read first: a PermissionError there was a traceback (faked: the tests may run as root)."""
    raw, release = tiny_market_release

    def denied(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))
    monkeypatch.setattr(datasets, "file_digest", denied)
    with pytest.raises(DatasetError, match=rf"^{raw / release.zip_name}: cannot read the file \(Permission denied\)$"):
        index_dataset(raw, "market1501", "market")


def test_count_mismatch_lists_every_difference(tiny_market_release, monkeypatch):
    raw, release = tiny_market_release
    monkeypatch.setitem(datasets.OFFICIAL, "market1501", dataclasses.replace(
        release, images={"train": 3, "query": 1, "gallery": 2}, cameras=6))
    with pytest.raises(DatasetError, match=r"Market-1501-v15.09.15.zip: does not match the published Market-1501 release: train images expected 3, found 2; "
                                           r"cameras expected 6, found 4"):
        index_dataset(raw, "market1501", "market")


def test_official_name_needs_the_official_zip(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    make_zip(raw / "market.zip", LAYOUT)
    with pytest.raises(DatasetError, match=r"Market-1501-v15.09.15.zip: not found.*found in .*: market.zip"):
        index_dataset(raw, "market1501", "market")
    with pytest.raises(DatasetError, match=r"official Market-1501 release, layout 'market'; got dataset.layout 'csv'"):
        index_dataset(raw, "market1501", "csv")
    (raw / "market.zip").unlink()
    (raw / "README.md").write_text("put the zip here")  # as the shipped data/market1501/raw/ holds
    with pytest.raises(DatasetError, match=r"Market-1501-v15.09.15.zip: not found.*found in .*: README.md\)$"):
        index_dataset(raw, "market1501", "market")


def test_official_zip_path_that_is_a_folder_says_so(tmp_path):
    """An unpacked copy named like the zip was 'not found' while the listing showed that very name."""
    raw = tmp_path / "raw"
    (raw / "Market-1501-v15.09.15.zip" / "query").mkdir(parents=True)
    with pytest.raises(DatasetError) as err:
        index_dataset(raw, "market1501", "market")
    assert str(err.value) == (
        f"{raw / 'Market-1501-v15.09.15.zip'}: a folder, not a zip file; the Market-1501 configuration expects the "
        f"official zip there, as downloaded (not unpacked)")


def test_truncated_official_zip_is_reported(tiny_market_release, monkeypatch):
    raw, release = tiny_market_release
    path = raw / release.zip_name
    path.write_bytes(path.read_bytes()[:300])
    monkeypatch.setitem(datasets.OFFICIAL, "market1501", dataclasses.replace(release, md5s=(md5_of(path),)))
    with pytest.raises(ValueError, match=r"Market-1501-v15.09.15.zip: not a readable zip"):
        index_dataset(raw, "market1501", "market")


def test_msmt17_release_counts(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    raw.mkdir()
    make_msmt17_zip(raw / "MSMT17_V2.zip")
    with pytest.raises(DatasetError, match=r"MSMT17_V2.zip: does not match the published MSMT17 V2 release: train images expected 32621"):
        index_dataset(raw, "msmt17", "msmt17")
    source, index = index_dataset(raw, "msmt17_copy", "msmt17")  # any other name: no fixed counts
    # The tiny zip's own counts, written out: train = list_train + list_val (pids 0, 1, 2; in MSMT17
    # pid 0 is a person), cameras 1, 3, 5, 7, 14, 15.
    assert summarize(index, "msmt17") == {
        "train": {"images": 5, "ids": 3, "cameras": 4},
        "query": {"images": 2, "ids": 2, "cameras": 2},
        "gallery": {"images": 3, "ids": 2, "cameras": 3},
    }
    release = dataclasses.replace(datasets.OFFICIAL["msmt17"], images={"train": 5, "query": 2, "gallery": 3},
                                  train_ids=3, cameras=6)
    check_official_counts(index, release, str(source))
    with pytest.raises(DatasetError, match=r"train identities expected 4, found 3; cameras expected 15, found 6"):
        check_official_counts(index, dataclasses.replace(release, train_ids=4, cameras=15), str(source))


@pytest.mark.parametrize("name, official, layout", [("Market1501", "market1501", "market"), ("DukeMTMC", "dukemtmc", "market"),
                                                    ("MSMT17", "msmt17", "msmt17")])
def test_name_differing_from_an_official_one_only_in_case_is_an_error(tmp_path, name, official, layout):
    """'Market1501' skipped the md5 and counts of 'market1501' without a word (and on a case-insensitive
    file system data/Market1501/raw/ is the official zip's folder)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    make_zip(raw / "Market-1501-v15.09.15.zip", LAYOUT)
    with pytest.raises(DatasetError) as err:
        index_dataset(raw, name, layout)
    assert str(err.value) == (f"dataset.name {name!r} differs from the official {official!r} only in case; use "
                              f"{official!r} for its checksums and counts, or another name for an unchecked "
                              f"{layout}-layout zip")


def test_any_market_layout_zip_is_indexed_without_checks(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    make_zip(raw / "cuhk03-np.zip", LAYOUT)
    source, index = index_dataset(raw, "cuhk03np", "market")
    assert source.name == "cuhk03-np.zip" and len(index) == 5
    make_zip(raw / "second.zip", LAYOUT)
    with pytest.raises(DatasetError, match=r"raw: expected exactly one dataset .zip, found cuhk03-np.zip, second.zip"):
        index_dataset(raw, "cuhk03np", "market")


def test_a_carriage_return_in_an_image_name_is_refused(tmp_path):
    """Written to index.csv unquoted, it split the row in two: extract succeeded and every later
    stage stopped at an unreadable index."""
    raw = tmp_path / "raw"
    raw.mkdir()
    name = TOP + "bounding_box_train/0005_c1s1_000001_01\r.jpg"
    zip_path = make_zip(raw / "crops.zip", {**LAYOUT, name: LAYOUT[TOP + "query/0003_c1s2_000123_01.jpg"]})
    with pytest.raises(DatasetError) as err:
        index_dataset(raw, "crops", "market")
    assert str(err.value) == (f"{zip_path}: image {name!r} has a carriage return in its name, which index.csv cannot "
                              f"hold; expected names without one (rename the file)")
    rows = [["image", "camid"], ["a.jpg", "1"], ['"b\rc.jpg"', "2"]]
    (tmp_path / "own").mkdir()
    csv_path, _ = make_footage(tmp_path / "own", rows, images=["a.jpg", "b\rc.jpg"])
    with pytest.raises(DatasetError, match=r"images.csv: image 'b\\rc.jpg' has a carriage return"):
        index_dataset(tmp_path / "own", "cams", "csv")


def test_zip_extension_in_any_case_is_found(tmp_path):
    """Pathlib's glob("*.zip") is case-sensitive on Linux: MyData.ZIP was 'found none'."""
    raw = tmp_path / "raw"
    raw.mkdir()
    make_zip(raw / "MyData.ZIP", LAYOUT)
    (raw / "README.txt").write_text("the zip goes here")
    source, index = index_dataset(raw, "mydata", "market")
    assert source.name == "MyData.ZIP" and len(index) == 5
    make_zip(raw / "other.Zip", LAYOUT)
    with pytest.raises(DatasetError, match=r"raw: expected exactly one dataset .zip, found MyData.ZIP, other.Zip$"):
        index_dataset(raw, "mydata", "market")


def test_cuhk03np_zip_with_a_subset(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    make_zip(raw / "cuhk03-np.zip", cuhk03np_members())
    with pytest.raises(ValueError, match=r"cuhk03-np.zip: several folders hold .*set dataset.subset"):
        index_dataset(raw, "cuhk03np", "market")
    source, index = index_dataset(raw, "cuhk03np", "market", subset="labeled")
    assert source.name == "cuhk03-np.zip" and len(index) == 8
    assert all(image.startswith("cuhk03-np/labeled/") and image.endswith(".png") for image in index["image"])
    with pytest.raises(ValueError, match="set dataset.subset"):  # an empty value is no choice
        index_dataset(raw, "cuhk03np", "market", subset="")
    with pytest.raises(DatasetError, match=r"^dataset.subset must be a folder name or null, got 5$"):
        index_dataset(raw, "cuhk03np", "market", subset=5)


def test_subset_is_for_the_market_layout_only(tmp_path):
    make_msmt17_zip(tmp_path / "MSMT17_V2.zip")
    with pytest.raises(DatasetError, match=r"dataset.subset is 'detected' but only the market layout has subsets; "
                                           r"got dataset.layout 'msmt17'"):
        index_dataset(tmp_path, "msmt17_copy", "msmt17", subset="detected")
    assert len(index_dataset(tmp_path, "msmt17_copy", "msmt17", subset=None)[1]) == 10


def test_zip_whose_queries_have_no_match_in_another_camera_is_rejected(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    members = {name.replace("0003_c4s1", "0003_c1s1"): data for name, data in LAYOUT.items()}  # match in the query's camera
    make_zip(raw / "same_camera.zip", members)
    with pytest.raises(DatasetError) as err:
        index_dataset(raw, "mine", "market")
    assert str(err.value) == (
        f"{raw / 'same_camera.zip'}: 0 of 1 query images have a gallery image of the same pid from another "
        f"camera; evaluation needs at least one (gallery images from the query's own camera are ignored)")


@pytest.mark.parametrize("as_zip", [True, False])
def test_csv_layout(tmp_path, as_zip):
    rows = [["image", "camid"], ["a/1.jpg", "1"], ["b/2.png", "2"]]
    csv_path, images_path = make_footage(tmp_path, rows, as_zip=as_zip)
    source, index = index_dataset(tmp_path, "cams", "csv")
    assert str(source) == images_path and list(index["image"]) == ["a/1.jpg", "b/2.png"]
    assert list(index["pid"]) == [-1, -1]


def test_csv_layout_needs_one_image_source(tmp_path):
    rows = [["image", "camid"], ["a.jpg", "1"]]
    make_footage(tmp_path, rows, as_zip=True)
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="either images.zip or an images/ folder beside images.csv; both exist"):
        index_dataset(tmp_path, "cams", "csv")
    (tmp_path / "images").rmdir()
    (tmp_path / "images.zip").unlink()
    with pytest.raises(DatasetError, match="neither exists"):
        index_dataset(tmp_path, "cams", "csv")
    (tmp_path / "images.csv").unlink()
    with pytest.raises(DatasetError, match=r"images.csv: not found; layout csv expects"):
        index_dataset(tmp_path, "cams", "csv")


@pytest.mark.parametrize("as_zip, message", [
    (False, "expected exactly one dataset .zip, found none"),
    (True, "missing folder"),
])
def test_own_crops_read_with_a_zip_layout_point_to_the_footage_preset(tmp_path, as_zip, message):
    make_footage(tmp_path, [["image", "camid"], ["a.jpg", "1"]], as_zip=as_zip)
    with pytest.raises(DatasetError, match=rf"{message}.*; .* holds images.csv: for your own crops use "
                                           r"-S dataset=footage \(dataset.layout=csv\)$"):
        index_dataset(tmp_path, "cams", "market")


def test_bad_layout_and_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="dataset.layout must be one of market, msmt17, csv, got 'voc'"):
        index_dataset(tmp_path, "x", "voc")
    with pytest.raises(DatasetError, match="nowhere: no such folder"):
        index_dataset(tmp_path / "nowhere", "x", "market")


def test_unlabelled_images_are_no_identity(tmp_path):
    """summarize counts distinct pids >= 0: footage's unlabelled images (pid -1) are no identity."""
    rows = [["image", "camid", "pid", "split"], ["a.jpg", "1", "", ""], ["b.jpg", "2", "", ""], ["c.jpg", "1", "3", ""],
            ["q.jpg", "1", "5", "query"], ["g.jpg", "2", "5", "gallery"]]
    make_footage(tmp_path, rows)
    _, index = index_dataset(tmp_path, "cams", "csv")
    assert summarize(index, "csv")["train"] == {"images": 3, "ids": 1, "cameras": 2}


def test_a_folder_named_like_a_zip_is_not_the_dataset_zip(tmp_path):
    """An unpacked copy beside the zip ('market.zip/' holding the folders) is no second zip."""
    raw = tmp_path / "raw"
    (raw / "unpacked.zip" / "query").mkdir(parents=True)
    make_zip(raw / "market.zip", LAYOUT)
    source, index = index_dataset(raw, "mine", "market")
    assert source.name == "market.zip" and len(index) == 5
