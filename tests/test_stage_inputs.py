"""stages/common.py's readers of a stage's inputs: the prepared index and image cache must belong
together and to params.yaml's image size, and a round's arrays must be what the stage after it
needs (pseudo-labels: 1-D non-negative integers; features: 2-D floats); otherwise the stage ends
with one line naming the file, before any work."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "stages"))

import common  # noqa: E402

STAGE = "evaluate r01"
PARAMS = {"dataset": {"name": "tiny", "height": 8, "width": 4}}


@pytest.fixture
def prepared(tmp_path, monkeypatch):
    """data/tiny/prepared/ under a scratch project root: a 6-row index.csv and its 6-image cache."""
    monkeypatch.setattr(common, "ROOT", tmp_path)
    folder = tmp_path / "data" / "tiny" / "prepared"
    folder.mkdir(parents=True)
    rows = [("a.jpg", 1, 1, "train"), ("b.jpg", 1, 2, "train"), ("c.jpg", 2, 1, "train"), ("d.jpg", 2, 2, "train"),
            ("e.jpg", 1, 1, "query"), ("f.jpg", 1, 2, "gallery")]
    (folder / "index.csv").write_text("image,pid,camid,split\n" + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in rows))
    np.save(folder / "images.npy", np.zeros((6, 8, 4, 3), dtype=np.uint8))
    return folder


def one_line_exit(read) -> str:
    with pytest.raises(SystemExit) as stop:
        read()
    assert "\n" not in str(stop.value)
    return str(stop.value)


def test_matching_index_and_cache_load(prepared):
    index = common.load_index(PARAMS, STAGE)
    assert common.load_images(PARAMS, STAGE, index).shape == (6, 8, 4, 3)


def test_a_truncated_index_is_refused_not_scored_as_a_subset(prepared):
    """Was: evaluate scored the rows the index still listed and exited 0."""
    lines = (prepared / "index.csv").read_text().splitlines(keepends=True)
    (prepared / "index.csv").write_text("".join(lines[:-2]))
    assert one_line_exit(lambda: common.load_images(PARAMS, STAGE, common.load_index(PARAMS, STAGE))) == (
        "evaluate r01: data/tiny/prepared/images.npy: holds 6 images but index.csv lists 4 (the two are from "
        "different extract runs, or one is damaged; rerun the extract stage)")


def test_a_short_cache_is_refused_not_an_index_error(prepared):
    np.save(prepared / "images.npy", np.zeros((3, 8, 4, 3), dtype=np.uint8))
    assert one_line_exit(lambda: common.load_images(PARAMS, STAGE, common.load_index(PARAMS, STAGE))) == (
        "evaluate r01: data/tiny/prepared/images.npy: holds 3 images but index.csv lists 6 (the two are from "
        "different extract runs, or one is damaged; rerun the extract stage)")


def test_a_cache_of_another_image_size_is_refused(prepared):
    np.save(prepared / "images.npy", np.zeros((6, 16, 8, 3), dtype=np.uint8))
    assert one_line_exit(lambda: common.load_images(PARAMS, STAGE, common.load_index(PARAMS, STAGE))) == (
        "evaluate r01: data/tiny/prepared/images.npy: holds 16 x 8 images but params.yaml dataset.height x width "
        "is 8 x 4 (made for another configuration; rerun the extract stage)")


@pytest.mark.parametrize("name, array, reason", [
    ("intra_labels.npy", np.array(["a", "b", "c", "d"]), "holds <U1 values of shape (4,), expected pseudo-labels: a 1-D "
     "integer array, one label per train image (rerun the intra_cluster stage that writes it)"),
    ("inter_labels.npy", np.array([0.0, 1.0, 1.0, 2.0]), "holds float64 values of shape (4,), expected pseudo-labels: "
     "a 1-D integer array, one label per train image (rerun the inter_affinity stage that writes it)"),
    ("intra_labels.npy", np.zeros((4, 2), dtype=np.int64), "holds int64 values of shape (4, 2), expected "
     "pseudo-labels: a 1-D integer array, one label per train image (rerun the intra_cluster stage that writes it)"),
    ("inter_labels.npy", np.array([0, -1, 1, 1]), "holds negative pseudo-labels (the smallest is -1), expected "
     "integers >= 0 (rerun the inter_affinity stage that writes it)"),
    ("features.npy", np.zeros(4, dtype=np.float32), "holds float32 values of shape (4,), expected features: a 2-D "
     "float32 array, one row of at least one value per train image (rerun the features stage that writes it)"),
    ("features.npy", np.zeros((4, 8, 2), dtype=np.float32), "holds float32 values of shape (4, 8, 2), expected "
     "features: a 2-D float32 array, one row of at least one value per train image (rerun the features stage that "
     "writes it)"),
    ("features.npy", np.zeros((4, 8), dtype=np.int64), "holds int64 values of shape (4, 8), expected features: a 2-D "
     "float32 array, one row of at least one value per train image (rerun the features stage that writes it)"),
    ("features.npy", np.zeros((4, 0), dtype=np.float32), "holds float32 values of shape (4, 0), expected features: a "
     "2-D float32 array, one row of at least one value per train image (rerun the features stage that writes it)"),
])
def test_a_round_array_of_the_wrong_kind_is_one_line(tmp_path, monkeypatch, name, array, reason):
    """Were a traceback in clustering or training, or (float labels) used silently."""
    monkeypatch.setattr(common, "ROOT", tmp_path)
    path = tmp_path / "runs" / "r01" / name
    path.parent.mkdir(parents=True)
    np.save(path, array)
    assert one_line_exit(lambda: common.load_round_array("intra_train r01", path, 4)) == (
        f"intra_train r01: runs/r01/{name}: {reason}")


@pytest.mark.parametrize("name, array", [
    ("intra_labels.npy", np.array([0, 1, 0, 2], dtype=np.int64)),
    ("inter_labels.npy", np.array([0, 1, 0, 2], dtype=np.int32)),
    ("features.npy", np.ones((4, 8), dtype=np.float32)),
])
def test_round_arrays_as_the_stages_write_them_load(tmp_path, name, array):
    np.save(tmp_path / name, array)
    np.testing.assert_array_equal(common.load_round_array("s", tmp_path / name, 4), array)


@pytest.mark.parametrize("name, array", [
    ("intra_labels.npy", np.array([0, 1, 0], dtype=np.int64)),
    ("inter_labels.npy", np.array([0, 1, 0, 2, 1], dtype=np.int64)),
    ("features.npy", np.ones((3, 8), dtype=np.float32)),
])
def test_a_round_array_with_another_row_count_is_one_line(tmp_path, monkeypatch, name, array):
    """Every array of a round holds one row per train image: one left by a run on another dataset
    (3 or 5 rows for the index's 4) ends the stage before any work. Was checked only under dvc repro."""
    monkeypatch.setattr(common, "ROOT", tmp_path)
    path = tmp_path / "runs" / "r01" / name
    path.parent.mkdir(parents=True)
    np.save(path, array)
    assert one_line_exit(lambda: common.load_round_array("intra_train r01", path, 4)) == (
        f"intra_train r01: runs/r01/{name}: holds shape {array.shape}, expected one row for each of the 4 train "
        "images in the index (written for another dataset or configuration? rerun the stage that writes it)")


def test_a_missing_round_array_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "ROOT", tmp_path)
    path = tmp_path / "runs" / "r01" / "intra_labels.npy"
    assert one_line_exit(lambda: common.load_round_array("intra_train r01", path, 4)) == (
        "intra_train r01: runs/r01/intra_labels.npy: not found (expected a file written by an earlier stage)")


def test_float64_features_load(tmp_path):
    """load_round_array's docstring: features are 2-D float32 or float64."""
    array = np.ones((4, 8), dtype=np.float64)
    np.save(tmp_path / "features.npy", array)
    np.testing.assert_array_equal(common.load_round_array("s", tmp_path / "features.npy", 4), array)
