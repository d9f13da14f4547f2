"""stages/extract.py run as DVC runs it, in a scratch project: what it writes, and its promise that
an interrupted or failed rerun never leaves an index.csv that looks complete."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_image_source import ENCRYPTED, patch_central_entry
from test_market import LAYOUT, TOP, cuhk03np_members, jpeg_bytes, make_zip

REPO = Path(__file__).resolve().parent.parent


def scratch_project(root: Path, name: str, subset: str | None = None) -> Path:
    """stages/ and a params.yaml under root, the raw folder data/<name>/raw/ returned (empty)."""
    shutil.copytree(REPO / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    dataset = {"name": name, "layout": "market", "subset": subset, "height": 8, "width": 4}
    (root / "params.yaml").write_text(yaml.safe_dump({"dataset": dataset}))
    raw = root / "data" / name / "raw"
    raw.mkdir(parents=True)
    return raw


def run_extract(root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), IICS_PROGRESS="0")
    return subprocess.run([sys.executable, "stages/extract.py"], cwd=root, env=env, capture_output=True, text=True)


def garbage_images(zip_path: Path) -> None:
    """The same zip, every image replaced by bytes no decoder reads: indexing passes, decoding fails."""
    make_zip(zip_path, {name: (b"not an image" if name.endswith(".jpg") else data) for name, data in LAYOUT.items()})


def truncate(zip_path: Path) -> None:
    zip_path.write_bytes(zip_path.read_bytes()[:200])


@pytest.mark.parametrize("corrupt, message", [
    (truncate, "not a readable zip"),           # fails while indexing
    (garbage_images, "cannot decode image"),    # fails while decoding, after indexing
])
def test_failed_rerun_leaves_no_index(tmp_path, corrupt, message):
    raw = scratch_project(tmp_path, "tiny")
    zip_path = raw / "tiny.zip"
    make_zip(zip_path, LAYOUT)
    first = run_extract(tmp_path)
    assert first.returncode == 0, first.stderr
    prepared = tmp_path / "data" / "tiny" / "prepared"
    assert (prepared / "index.csv").is_file() and (prepared / "images.npy").is_file()

    corrupt(zip_path)
    second = run_extract(tmp_path)
    assert second.returncode != 0
    assert not (prepared / "index.csv").exists()
    assert not list(prepared.glob("*.tmp"))
    error = second.stderr.strip()
    assert "\n" not in error and error.startswith(f"extract: {zip_path}") and message in error, second.stderr


def test_summary_counts_market_distractors_apart(tmp_path):
    raw = scratch_project(tmp_path, "tiny")
    make_zip(raw / "tiny.zip", LAYOUT)
    result = run_extract(tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "metrics" / "dataset.json").read_text())
    assert summary["splits"]["gallery"] == {"images": 2, "ids": 1, "cameras": 2, "distractors": 1}
    assert summary["evaluation"] is True and summary["scored_queries"] == 1
    assert "(1 distractor images, not an identity)" in result.stdout
    assert "queries scored: 1 of 1\n" in result.stdout
    assert "train images per camera: 1 each" in result.stdout


def test_summary_names_the_smallest_training_camera(tmp_path):
    """Intra-camera epochs end when the smallest camera runs out, so extract names it."""
    raw = scratch_project(tmp_path, "tiny")
    make_zip(raw / "tiny.zip", {**LAYOUT, "Market-1501-v15.09.15/bounding_box_train/0002_c1s1_000551_01.jpg": jpeg_bytes()})
    result = run_extract(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "train images per camera: fewest 1 (camera 2), most 2 (camera 1)" in result.stdout


def test_summary_counts_the_queries_evaluation_can_score(tmp_path):
    """A query whose pid the gallery holds only in the query's own camera is skipped by every
    evaluation: extract says how many are left, so a mean over fewer queries is not a surprise."""
    raw = scratch_project(tmp_path, "tiny")
    make_zip(raw / "tiny.zip", {**LAYOUT, "Market-1501-v15.09.15/query/0005_c2s1_000001_01.jpg": jpeg_bytes()})
    result = run_extract(tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "metrics" / "dataset.json").read_text())["scored_queries"] == 1
    assert ("queries scored: 1 of 2 (1 have no gallery image of their pid from another camera and are left out of "
            "mAP and CMC)") in result.stdout


def test_cuhk03np_subset_from_params(tmp_path):
    raw = scratch_project(tmp_path, "cuhk03np", subset="detected")
    make_zip(raw / "cuhk03-np.zip", cuhk03np_members())
    result = run_extract(tmp_path)
    assert result.returncode == 0, result.stderr
    index = (tmp_path / "data" / "cuhk03np" / "prepared" / "index.csv").read_text().splitlines()
    assert len(index) == 9 and all(",cuhk03-np/detected/" in f",{row}" for row in index[1:])


def test_no_scorable_query_stops_extract_with_one_line(tmp_path):
    raw = scratch_project(tmp_path, "tiny")
    members = {name.replace("0003_c4s1", "0003_c1s1"): data for name, data in LAYOUT.items()}
    members["Market-1501-v15.09.15/bounding_box_test/0009_c2s1_000001_01.jpg"] = jpeg_bytes()
    make_zip(raw / "tiny.zip", members)
    result = run_extract(tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        f"extract: {raw / 'tiny.zip'}: 0 of 1 query images have a gallery image of the same pid from another "
        f"camera; evaluation needs at least one (gallery images from the query's own camera are ignored)")
    assert not (tmp_path / "data" / "tiny" / "prepared" / "index.csv").exists()


@pytest.mark.parametrize("height", ["x", 0, 6.5])
def test_image_size_that_is_not_a_positive_integer_is_one_line(tmp_path, height):
    raw = scratch_project(tmp_path, "tiny")
    make_zip(raw / "tiny.zip", LAYOUT)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["dataset"]["height"] = height
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_extract(tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip() == f"extract: height and width must be positive integers, got {height!r} x 4"
    assert not (tmp_path / "data" / "tiny" / "prepared" / "index.csv").exists()


def test_encrypted_member_stops_extract_with_one_line(tmp_path):
    raw = scratch_project(tmp_path, "tiny")
    make_zip(raw / "tiny.zip", LAYOUT)
    offset, value, reason = ENCRYPTED
    patch_central_entry(raw / "tiny.zip", TOP + "query/0003_c1s2_000123_01.jpg", offset, value)
    result = run_extract(tmp_path)
    assert result.returncode != 0
    error = result.stderr.strip()
    assert error.startswith(f"extract: {raw / 'tiny.zip'}: cannot read member '{TOP}query/0003_c1s2_000123_01.jpg' (")
    assert reason in error and "\n" not in error
    assert not (tmp_path / "data" / "tiny" / "prepared" / "index.csv").exists()


@pytest.mark.parametrize("change, message", [
    ({"height": 0}, "extract: height and width must be positive integers, got 0 x 4"),
    ({"layout": "mars"}, "extract: dataset.layout must be one of "),
    ({"subset": 5}, "extract: dataset.subset must be a folder name or null, got 5"),
])
def test_a_bad_setting_leaves_the_prepared_data_as_it_was(tmp_path, change, message):
    """Extract removed index.csv first, then checked the settings: a typo destroyed a good index."""
    raw = scratch_project(tmp_path, "tiny")
    make_zip(raw / "tiny.zip", LAYOUT)
    assert run_extract(tmp_path).returncode == 0
    prepared = tmp_path / "data" / "tiny" / "prepared"
    before = {path.name: path.read_bytes() for path in prepared.iterdir()}
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["dataset"].update(change)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_extract(tmp_path)
    assert result.returncode != 0 and result.stderr.strip().startswith(message), result.stderr
    assert {path.name: path.read_bytes() for path in prepared.iterdir()} == before


def test_a_misspelt_dataset_name_makes_no_prepared_folder(tmp_path):
    raw = scratch_project(tmp_path, "tiny")
    make_zip(raw / "tiny.zip", LAYOUT)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["dataset"]["name"] = "tinny"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_extract(tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip() == (f"extract: {tmp_path / 'data' / 'tinny' / 'raw'}: no such folder; put the dataset "
                                     "files there (see data/README.md)")
    assert not (tmp_path / "data" / "tinny").exists()
