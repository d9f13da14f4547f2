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


def test_inter_disabled_and_nothing_to_evaluate_are_reported(metrics):
    """The files a stage writes when it has nothing to do are read as such, not as missing."""
    for round_id in PARAMS["rounds"]:
        write(metrics, round_id, "inter", {"enabled": False})
    for round_id in PARAMS["evaluations"]:
        write(metrics, round_id, "eval", {"evaluated": False, "reason": "no test set"})
    report.main()
    assert "inter" not in pd.read_csv(metrics / "curves" / "clusters.csv").columns
    assert json.loads((metrics / "eval.json").read_text()) == {"evaluated": False, "reason": "no test set"}


@pytest.mark.parametrize("round_id, name, text, message", [
    ("r01", "eval", '{"evaluated": true, "mAP": 1', r"^metrics/rounds/r01/eval.json: not valid JSON \(Expecting ',' "
                                                    r"delimiter: line 1 column 29 \(char 28\)\); rerun the stage that "
                                                    r"writes it$"),
    ("r00", "intra", "[]", r"^metrics/rounds/r00/intra.json: expected a JSON object of metrics, got \[\]; rerun the "
                           r"stage that writes it$"),
    ("r02", "eval", '{"evaluated": true}', r"^metrics/rounds/r02/eval.json: holds no mAP, rank1, rank5, rank10 \(keys "
                                           r"\['evaluated'\]\); rerun its evaluate stage$"),
    ("r01", "inter", '{"enabled": true}', r"^metrics/rounds/r01/inter.json: holds no num_clusters \(keys \['enabled'\]\); "
                                          r"rerun its inter_affinity stage$"),
    ("r01", "intra", '{"nmi": 0.5}', r"^metrics/rounds/r01/intra.json: holds no clusters_per_camera"),
])
def test_a_damaged_metrics_file_is_one_line_and_nothing_is_written(metrics, round_id, name, text, message):
    """Were a JSONDecodeError or KeyError traceback, or (eval.json without scores) an empty final line."""
    (metrics / "rounds" / round_id / f"{name}.json").write_text(text)
    with pytest.raises(SystemExit, match=message):
        report.main()
    assert not (metrics / "curves").exists() and not (metrics / "eval.json").exists()


def test_a_missing_inter_json_is_an_error_not_an_empty_round(metrics):
    """inter_affinity writes inter.json also when the stage is disabled: it was read as {}, and the
    round's inter-camera clusters and NMI silently left the curves."""
    (metrics / "rounds" / "r00" / "inter.json").unlink()
    with pytest.raises(SystemExit, match=r"^metrics/rounds/r00/inter.json missing: params.yaml `rounds` lists 'r00' "
                                         r"\(run its inter_affinity stage\)$"):
        report.main()


@pytest.fixture
def curves(metrics, monkeypatch):
    import common
    import plot_curves

    report.main()
    monkeypatch.setattr(plot_curves, "METRICS", metrics)
    monkeypatch.setattr(plot_curves, "ROOT", metrics.parent)
    monkeypatch.setattr(common, "ROOT", metrics.parent)  # paths are shown relative to it
    return plot_curves


def test_plot_curves_draws_what_report_wrote(curves, metrics):
    curves.main()
    assert (metrics.parent / "plots" / "curves.png").is_file()


@pytest.mark.parametrize("change, message", [
    (lambda path: path.unlink(), r"^plot_curves: metrics/curves/eval.csv: not found \(the report stage writes it; run "
                                 r"that first\)$"),
    (lambda path: path.write_text("round,rank1\n-1,10.0\n"), r"^plot_curves: metrics/curves/eval.csv: has no column mAP "
                                                            r"\(columns \['round', 'rank1'\]\); rerun the report stage$"),
    (lambda path: path.write_text('round,mAP,rank1\n-1,"10\n'), r"^plot_curves: metrics/curves/eval.csv: not a readable "
                                                               r"CSV \(.*\); rerun the report stage$"),
])
def test_plot_curves_without_a_readable_curve_is_one_line(curves, metrics, change, message):
    """A missing eval.csv was a FileNotFoundError traceback."""
    change(metrics / "curves" / "eval.csv")
    with pytest.raises(SystemExit, match=message):
        curves.main()
    assert not (metrics.parent / "plots" / "curves.png").exists()
