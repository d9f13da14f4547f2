"""End to end: `dvc repro` of a tiny configuration in a temporary git repo, then an experiment
with another clustering threshold, then `dvc metrics diff`."""
from __future__ import annotations

import json

from tiny_repo import GIT, dvc_executable, make_tiny_repo, run


def test_repro_then_experiment_changes_metrics(tmp_path):
    dvc = dvc_executable()
    env = make_tiny_repo(tmp_path, rounds=2)
    run([dvc, "repro"], tmp_path, env)
    first = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert set(first) == {"mAP", "rank1", "rank5", "rank10"}
    assert (tmp_path / "metrics" / "curves" / "clusters.csv").is_file()
    assert "changed" not in run([dvc, "status"], tmp_path, env)

    run(GIT + ["add", "-A"], tmp_path, env)
    run(GIT + ["commit", "-qm", "baseline run"], tmp_path, env)
    out = run([dvc, "exp", "run", "-S", "clustering.threshold=0.3"], tmp_path, env)
    assert "Running stage 'extract'" not in out and "Running stage 'synthesize'" not in out
    assert "Running stage 'intra_cluster@r00'" in out
    second = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert second != first
    diff = run([dvc, "metrics", "diff"], tmp_path, env)
    assert "mAP" in diff
