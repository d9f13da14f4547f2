"""stages/report.py: the per-round curves come from the rounds and evaluations params.yaml lists."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "stages"))

import report  # noqa: E402

PARAMS = {
    "rounds": {"r00": {"t": 0, "prev": "init"}, "r01": {"t": 1, "prev": "r00"}, "r02": {"t": 2, "prev": "r01"}},
    "evaluations": ["init", "r01", "r02"],
}


def write(metrics: Path, round_id: str, name: str, payload: dict) -> None:
    path = metrics / "rounds" / round_id / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def scores(rank1: float) -> dict:
    return {"evaluated": True, "mAP": rank1 / 2, "rank1": rank1, "rank5": 90.0, "rank10": 95.0}


@pytest.fixture
def metrics(tmp_path, monkeypatch):
    """A metrics/ folder for PARAMS, plus a stale r00/eval.json left by an earlier schedule."""
    metrics = tmp_path / "metrics"
    for t, round_id in enumerate(PARAMS["rounds"]):
        write(metrics, round_id, "intra", {"clusters_per_camera": {"1": 10 + t, "2": 20 + t}})
        write(metrics, round_id, "inter", {"enabled": True, "num_clusters": 15 + t})
    write(metrics, "init", "eval", scores(10.0))
    write(metrics, "r00", "eval", scores(99.0))  # stale: r00 is not in `evaluations`
    write(metrics, "r01", "eval", scores(30.0))
    write(metrics, "r02", "eval", scores(40.0))
    monkeypatch.setattr(report, "METRICS", metrics)
    monkeypatch.setattr(report, "load_params", lambda: PARAMS)
    return metrics


def test_eval_curve_holds_only_the_listed_evaluations(metrics):
    report.main()
    curve = pd.read_csv(metrics / "curves" / "eval.csv")
    assert curve["round"].tolist() == [-1, 1, 2]
    assert curve["rank1"].tolist() == [10.0, 30.0, 40.0]
    assert json.loads((metrics / "eval.json").read_text())["rank1"] == 40.0
    assert pd.read_csv(metrics / "curves" / "clusters.csv")["inter"].tolist() == [15, 16, 17]


def test_a_listed_evaluation_without_its_file_is_an_error(metrics):
    (metrics / "rounds" / "r01" / "eval.json").unlink()
    with pytest.raises(SystemExit, match=r"metrics/rounds/r01/eval.json missing: params.yaml `evaluations` lists 'r01'"):
        report.main()


def test_a_listed_round_without_its_clustering_is_an_error(metrics):
    """Run by hand with a round params.yaml lists but nobody computed: was KeyError 'clusters_per_camera'."""
    (metrics / "rounds" / "r02" / "intra.json").unlink()
    with pytest.raises(SystemExit, match=r"^metrics/rounds/r02/intra.json missing: params.yaml `rounds` lists 'r02' "
                                         r"\(run its intra_cluster stage\)$"):
        report.main()
