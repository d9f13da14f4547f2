"""Tests for iics.synthetic: determinism, Market-1501 layout, counts and a fairness sanity check."""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from iics.market import index_market_zip, parse_market_name
from iics.synthetic import hue_rotation, write_synthetic_zip

ARGS = dict(num_train_ids=6, num_test_ids=5, num_cameras=3, images_per_camera=3, cameras_per_id=2,
            height=32, width=16, num_distractors=4, num_junk=3, seed=1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("syn") / "synthetic.zip"
    summary = write_synthetic_zip(path, **ARGS)
    return path, summary


def members_by_folder(path) -> dict[str, list[str]]:
    folders = defaultdict(list)
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.is_dir():
                top, folder, name = info.filename.split("/")
                folders[folder].append(name)
    return folders


def test_deterministic(tmp_path, dataset):
    path, _ = dataset
    again = tmp_path / "again.zip"
    write_synthetic_zip(again, **ARGS)
    assert again.read_bytes() == path.read_bytes()
    other = tmp_path / "other.zip"
    write_synthetic_zip(other, **{**ARGS, "seed": 2})
    assert other.read_bytes() != path.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["again.zip", "other.zip"]  # no temporary files left


def test_zip_layout(dataset):
    path, summary = dataset
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    assert {i.filename for i in infos if i.is_dir()} == {
        "Synthetic-reID/", "Synthetic-reID/bounding_box_train/", "Synthetic-reID/bounding_box_test/",
        "Synthetic-reID/query/"}
    for info in infos:
        assert info.date_time == (2020, 1, 1, 0, 0, 0)
        assert info.compress_type == zipfile.ZIP_STORED
        if not info.is_dir():
            assert info.filename.startswith("Synthetic-reID/") and info.filename.endswith(".jpg")
            parse_market_name(info.filename)
    assert summary["top_folder"] == "Synthetic-reID"


def test_names_and_images(dataset):
    path, _ = dataset
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.endswith(".jpg")]
        for name in names[::7]:
            with Image.open(io.BytesIO(zf.read(name))) as img:
                assert img.format == "JPEG" and img.mode == "RGB" and img.size == (16, 32)
    for name in names:
        base = name.rsplit("/", 1)[1]
        pid, cam = parse_market_name(base)
        prefix = "-1" if pid == -1 else f"{pid:04d}"
        stem = base[len(prefix):]
        assert stem.startswith(f"_c{cam}s") and len(stem) == len("_c1s1_000451_03.jpg")
        assert 1 <= cam <= ARGS["num_cameras"]


def test_counts(dataset):
    path, summary = dataset
    folders = members_by_folder(path)
    pids = {folder: [parse_market_name(n)[0] for n in names] for folder, names in folders.items()}
    per_id = ARGS["cameras_per_id"] * ARGS["images_per_camera"]
    assert len(pids["bounding_box_train"]) == ARGS["num_train_ids"] * per_id == summary["train_images"]
    assert len(set(pids["bounding_box_train"])) == ARGS["num_train_ids"]
    test_ids = set(pids["query"])
    assert len(test_ids) == ARGS["num_test_ids"]
    assert len(pids["query"]) == ARGS["num_test_ids"] * ARGS["cameras_per_id"] == summary["query_images"]
    gallery = pids["bounding_box_test"]
    assert gallery.count(0) == ARGS["num_distractors"] == summary["distractor_images"]
    assert gallery.count(-1) == ARGS["num_junk"] == summary["junk_images"]
    assert len(gallery) == summary["gallery_images"]
    assert {p for p in gallery if p > 0} == test_ids
    assert summary["total_images"] == sum(len(v) for v in pids.values())
    assert not set(pids["bounding_box_train"]) & test_ids
    assert 0 not in pids["bounding_box_train"] and 0 not in test_ids


def test_cameras_per_identity(dataset):
    path, _ = dataset
    cams = defaultdict(lambda: defaultdict(int))
    for names in members_by_folder(path).values():
        for name in names:
            pid, cam = parse_market_name(name)
            if pid > 0:
                cams[pid][cam] += 1
    for pid, per_cam in cams.items():
        assert len(per_cam) == ARGS["cameras_per_id"]
        assert set(per_cam.values()) == {ARGS["images_per_camera"]}


def test_every_query_has_cross_camera_match(dataset):
    path, _ = dataset
    index = index_market_zip(path)
    query, gallery = index[index.split == "query"], index[index.split == "gallery"]
    assert (query.groupby(["pid", "camid"]).size() == 1).all()
    for _, row in query.iterrows():
        assert ((gallery.pid == row.pid) & (gallery.camid != row.camid)).any()
    assert (gallery.pid == 0).sum() == ARGS["num_distractors"]


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="cameras_per_id"):
        write_synthetic_zip(tmp_path / "a.zip", **{**ARGS, "cameras_per_id": 1})
    with pytest.raises(ValueError, match="cameras_per_id"):
        write_synthetic_zip(tmp_path / "a.zip", **{**ARGS, "cameras_per_id": 4})
    with pytest.raises(ValueError, match="queries_per_camera"):
        write_synthetic_zip(tmp_path / "a.zip", **{**ARGS, "images_per_camera": 1})
    assert not os.listdir(tmp_path)


def test_camera_shift_and_identity_signal(tmp_path):
    """Raw pixels: within a camera the same person is closest (learnable); across cameras the same
    person is about as far as a stranger in the same camera (strong camera shift)."""
    path = tmp_path / "s.zip"
    write_synthetic_zip(path, **{**ARGS, "num_train_ids": 20, "images_per_camera": 4, "num_cameras": 3})
    index = index_market_zip(path)
    train = index[index.split == "train"]
    with zipfile.ZipFile(path) as zf:
        x = np.stack([np.asarray(Image.open(io.BytesIO(zf.read(m))), dtype=np.float32).ravel()
                      for m in train.image])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    dist = 2 - 2 * x @ x.T
    pid, cam = train.pid.to_numpy(), train.camid.to_numpy()
    same_id, same_cam = pid[:, None] == pid[None, :], cam[:, None] == cam[None, :]
    off_diag = ~np.eye(len(pid), dtype=bool)
    same_id_same_cam = dist[same_id & same_cam & off_diag].mean()
    same_id_cross_cam = dist[same_id & ~same_cam].mean()
    other_id_same_cam = dist[~same_id & same_cam].mean()
    other_id_cross_cam = dist[~same_id & ~same_cam].mean()
    assert same_id_same_cam < 0.6 * min(other_id_same_cam, same_id_cross_cam)
    assert 0.6 < other_id_same_cam / same_id_cross_cam < 1.6
    assert max(other_id_same_cam, same_id_cross_cam) < other_id_cross_cam


def test_hue_rotation_keeps_greys_and_turns_primaries():
    turn = hue_rotation(120.0)
    np.testing.assert_allclose(turn @ np.array([100.0, 100.0, 100.0]), [100.0, 100.0, 100.0], atol=1e-4)
    np.testing.assert_allclose(turn @ np.array([1.0, 0.0, 0.0]), [0.0, 1.0, 0.0], atol=1e-6)  # red -> green
    np.testing.assert_allclose(turn @ turn.T, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(hue_rotation(0.0), np.eye(3), atol=1e-7)


@pytest.mark.parametrize("key, value, message", [
    ("cameras", 12, r"params.yaml: synthetic.cameras must be <= 9 \(single-digit c<cam> as in Market-1501\), got 12"),
    # Were named by the library's arguments (queries_per_camera, num_distractors, num_junk).
    ("images_per_camera", 1, r"params.yaml: synthetic.images_per_camera must be in \[2, 1000\] \(one image per camera "
                             r"of each test identity is a query; the others are its gallery matches\), got 1"),
    ("junk", -1, r"params.yaml: synthetic.junk must be >= 0, got -1"),
    ("distractors", -2, r"params.yaml: synthetic.distractors must be >= 0, got -2"),
    ("cameras_per_id", 4, r"params.yaml: synthetic.cameras_per_id must be in \[2, synthetic.cameras\] \(each identity "
                          r"crosses cameras\), got 4"),
    ("train_ids", 9995, r"params.yaml: synthetic.test_ids must be <= 9999 - synthetic.train_ids \(at most 9999 "
                        r"identities fit 4-digit Market-1501 pids\), got 5"),
    ("width", 4, r"params.yaml: synthetic.width must be >= 8, got 4"),
    ("train_ids", "x", r"params.yaml: synthetic.train_ids must be an integer, got 'x'"),
    ("height", 2.5, r"params.yaml: synthetic.height must be an integer, got 2.5"),
])
def test_synthesize_stage_rejects_bad_params_in_one_line_and_writes_nothing(tmp_path, key, value, message):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parent.parent
    shutil.copytree(repo / "stages", tmp_path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    synthetic = {"train_ids": 6, "test_ids": 5, "cameras": 3, "cameras_per_id": 2, "images_per_camera": 3,
                 "height": 32, "width": 16, "distractors": 4, "junk": 3, "seed": 1, key: value}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"synthetic": synthetic}))
    result = subprocess.run([sys.executable, "stages/synthesize.py"], cwd=tmp_path, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(repo)))
    assert result.returncode != 0
    assert re.fullmatch(message, result.stderr.strip()), result.stderr
    assert not (tmp_path / "data" / "synthetic" / "raw" / "Synthetic-reID.zip").exists()


def test_the_synthesize_stage_checks_exactly_the_library_limits():
    """stages/synthesize.py checks the generator's limits itself, to name params.yaml keys: for every
    setting, over values around each limit, the stage refuses exactly what the library refuses, so a
    limit changed in one place and not the other fails here."""
    import sys
    from pathlib import Path

    from iics.synthetic.dataset import _check_args

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "stages"))
    import synthesize

    base = {"train_ids": 6, "test_ids": 5, "cameras": 3, "cameras_per_id": 2, "images_per_camera": 3,
            "height": 32, "width": 16, "distractors": 4, "junk": 3, "seed": 1}
    values = (-1, 0, 1, 2, 3, 7, 8, 9, 10, 15, 16, 17, 999, 1000, 1001, 9993, 9994, 9995, 9998, 9999)
    for key in base:
        for value in values:
            p = {**base, key: value}
            try:
                synthesize.check_settings(p)
                stage_accepts = True
            except SystemExit:
                stage_accepts = False
            try:
                _check_args(p["train_ids"], p["test_ids"], p["cameras"], p["images_per_camera"], p["cameras_per_id"],
                            p["height"], p["width"], p["distractors"], p["junk"], queries_per_camera=1, seed=p["seed"])
                library_accepts = True
            except ValueError:
                library_accepts = False
            assert stage_accepts == library_accepts, (key, value, stage_accepts)
