"""End to end: `dvc repro` of a tiny configuration in a temporary git repo, then an experiment
with another clustering threshold, then `dvc metrics diff`."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
TINY = {
    "dataset": {"height": 32, "width": 16},
    "synthetic": {"train_ids": 16, "test_ids": 10, "cameras": 2, "cameras_per_id": 2, "images_per_camera": 3,
                  "height": 32, "width": 16, "distractors": 4, "junk": 2},
    "model": {"backbone": "resnet18"},
    "features": {"batch_size": 64},
    "intra": {"epochs": 1, "batch_per_camera": 4},
    "inter": {"epochs": 1, "ids_per_batch": 4, "images_per_id": 2},
    "augment": {"pad": 2},
    "eval": {"every": 1},
}


def run(args, cwd, env):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def merge(base: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict):
            merge(base[key], value)
        else:
            base[key] = value


@pytest.fixture()
def tiny_repo(tmp_path):
    dvc = shutil.which("dvc", path=os.path.dirname(sys.executable)) or shutil.which("dvc")
    if dvc is None:
        pytest.fail("dvc is not installed (pip install -e .[test] installs it)")
    for name in ("stages", "iics", ".dvc", "dvc.yaml", ".dvcignore", ".gitignore"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "cache", "tmp", "config.local"))
        else:
            shutil.copy(src, tmp_path / name)
    text = (REPO / "params.yaml").read_text()
    marker = "# ---- generated"
    params = yaml.safe_load(text[: text.index(marker)])
    merge(params, TINY)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False) + text[text.index(marker):])
    env = dict(os.environ, DVC_NO_ANALYTICS="1", IICS_PROGRESS="0",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    run([sys.executable, "stages/set_rounds.py", "2"], tmp_path, env)
    run(["git", "init", "-q"], tmp_path, env)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], tmp_path, env)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], tmp_path, env)
    return tmp_path, env, dvc


def test_repro_then_experiment_changes_metrics(tiny_repo):
    repo, env, dvc = tiny_repo
    run([dvc, "repro"], repo, env)
    first = json.loads((repo / "metrics" / "eval.json").read_text())
    assert set(first) == {"mAP", "rank1", "rank5", "rank10"}
    assert (repo / "metrics" / "curves" / "clusters.csv").is_file()
    status = run([dvc, "status"], repo, env)
    assert "changed" not in status

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    run(git + ["add", "-A"], repo, env)
    run(git + ["commit", "-qm", "baseline run"], repo, env)

    out = run([dvc, "exp", "run", "-S", "clustering.threshold=0.3"], repo, env)
    assert "Running stage 'extract'" not in out and "Running stage 'synthesize'" not in out
    assert "Running stage 'intra_cluster@r00'" in out
    second = json.loads((repo / "metrics" / "eval.json").read_text())
    assert second != first
    diff = run([dvc, "metrics", "diff"], repo, env)
    assert "mAP" in diff
