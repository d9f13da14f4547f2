"""The configuration presets in conf/: composition, the committed params.yaml, round schedules."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "stages"))

import configure  # noqa: E402
import set_rounds  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402


def composed(*overrides: str) -> dict:
    return OmegaConf.to_container(configure.compose(list(overrides)))


def test_committed_params_are_the_default_composition():
    assert (REPO / "params.yaml").read_text() == configure.render([])


@pytest.mark.parametrize("dataset", ["market1501", "msmt17"])
def test_benchmark_params_are_the_paper_presets(dataset):
    """benchmarks/round_speed.py runs without Hydra, from these files: they must not drift."""
    assert (REPO / "benchmarks" / "paper_params" / f"{dataset}.yaml").read_text() == configure.render([f"dataset={dataset}"])


def test_shipped_schedules_are_generated():
    assert (REPO / "conf/schedule/short.yaml").read_text() == set_rounds.render(5, 2, "short")
    assert (REPO / "conf/schedule/paper.yaml").read_text() == set_rounds.render(40, 5, "paper")


def test_an_existing_schedule_is_replaced_only_with_force(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(set_rounds, "ROOT", tmp_path)
    monkeypatch.setattr(set_rounds, "SCHEDULES", tmp_path)
    set_rounds.main(["3", "--every", "1", "--name", "mine"])
    set_rounds.main(["3", "--every", "1", "--name", "mine"])  # the same schedule again: nothing to refuse
    with pytest.raises(SystemExit, match=r"^mine.yaml exists with another schedule .* pass --force to replace it$"):
        set_rounds.main(["4", "--name", "mine"])
    assert (tmp_path / "mine.yaml").read_text() == set_rounds.render(3, 1, "mine")
    set_rounds.main(["4", "--name", "mine", "--force"])
    assert (tmp_path / "mine.yaml").read_text() == set_rounds.render(4, 5, "mine")
    assert "select it with: dvc exp run -S schedule=mine" in capsys.readouterr().out


def test_schedule_lists_rounds_and_evaluations():
    plan = set_rounds.schedule(7, 3)
    assert list(plan["rounds"]) == [f"r0{t}" for t in range(7)]
    assert plan["rounds"]["r00"] == {"t": 0, "prev": "init"} and plan["rounds"]["r06"] == {"t": 6, "prev": "r05"}
    assert plan["evaluations"] == ["init", "r02", "r05", "r06"]
    assert yaml.safe_load(set_rounds.render(7, 3, "seven")) == plan


def test_the_generated_header_command_rewrites_the_same_file(tmp_path, monkeypatch):
    """The header said `set_rounds.py 40 --every 5`, which writes rounds40.yaml, not paper.yaml."""
    monkeypatch.setattr(set_rounds, "ROOT", tmp_path)
    monkeypatch.setattr(set_rounds, "SCHEDULES", tmp_path)
    set_rounds.main(["3", "--every", "2", "--name", "mine"])
    command = (tmp_path / "mine.yaml").read_text().split("`")[1].split()
    assert command[:2] == ["python", "stages/set_rounds.py"]
    (tmp_path / "mine.yaml").write_text("edited\n")
    set_rounds.main(command[2:])
    assert (tmp_path / "mine.yaml").read_text() == set_rounds.render(3, 2, "mine")


@pytest.mark.parametrize("name", ["true", "False", "null", "nan", "Inf"])
def test_schedule_names_hydra_reads_as_values_are_refused(tmp_path, monkeypatch, name):
    monkeypatch.setattr(set_rounds, "ROOT", tmp_path)
    monkeypatch.setattr(set_rounds, "SCHEDULES", tmp_path)
    with pytest.raises(SystemExit, match=rf"^--name '{name}' would be read as .* by `-S schedule={name}`"):
        set_rounds.main(["3", "--name", name])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("override, got", [("clustering=5", "int"), ("schedule=null", "NoneType"), ("schedule=true", "bool")])
def test_a_group_given_a_value_is_one_line(override, got):
    """Hydra raises a plain ValueError for these, which was a traceback."""
    with pytest.raises(SystemExit) as err:
        configure.compose([override])
    assert str(err.value).startswith(f"conf/: cannot compose {[override]}: ") and str(err.value).endswith(f"Got {got}")


PAPER = {
    "dataset": {"height": 256, "width": 128},
    "model": {"backbone": "resnet50_aibn", "weights": "data/weights/resnet50-0676ba61.pth"},
    "intra": {"epochs": 2, "batch_per_camera": 8, "lr": 0.005, "backbone_lr_scale": 0.1},
    "inter": {"epochs": 2, "ids_per_batch": 16, "images_per_id": 4, "lr": 0.01, "backbone_lr_scale": 0.1, "mu": 0.02},
    "augment": {"pad": 10},
}


@pytest.mark.parametrize("dataset, layout", [("market1501", "market"), ("dukemtmc", "market"), ("msmt17", "msmt17")])
@pytest.mark.parametrize("method", ["count", "quantile"])
def test_paper_presets(dataset, layout, method):
    overrides = [f"dataset={dataset}"] + ([] if method == "count" else ["clustering=quantile"])
    config = composed(*overrides)
    assert config["dataset"]["name"] == dataset and config["dataset"]["layout"] == layout
    assert config["clustering"]["method"] == method
    expected_intra_epochs = 12 if (dataset, method) == ("msmt17", "quantile") else 2
    for group, values in PAPER.items():
        for key, value in values.items():
            expected = expected_intra_epochs if (group, key) == ("intra", "epochs") else value
            assert config[group][key] == expected, (group, key)
    assert config["clustering"]["intra_count"] == 600 and config["clustering"]["inter_count"] == 800
    assert config["clustering"]["intra_quantile"] == 0.0025 and config["clustering"]["inter_quantile"] == 0.0017
    assert len(config["rounds"]) == 40
    assert config["evaluations"] == ["init", "r04", "r09", "r14", "r19", "r24", "r29", "r34", "r39"]


def test_values_override_presets():
    config = composed("dataset=market1501", "clustering.intra_count=500", "intra.epochs=3", "schedule=short")
    assert config["clustering"]["method"] == "count" and config["clustering"]["intra_count"] == 500
    assert config["intra"]["epochs"] == 3 and config["model"]["backbone"] == "resnet50_aibn"
    assert len(config["rounds"]) == 5


def test_footage_preset_reads_a_csv_with_adaptive_clusters():
    config = composed("dataset=footage", "dataset.name=campus")
    assert config["dataset"] == {"name": "campus", "layout": "csv", "height": 256, "width": 128, "subset": None}
    assert config["clustering"]["method"] == "quantile"


def test_zip_root_subset_passes_through_hydra():
    """'/' is the dataset.subset that selects a Market layout at the zip root (iics.market)."""
    assert composed("dataset=market1501", "dataset.subset=/")["dataset"]["subset"] == "/"


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(SystemExit, match="market1502"):
        configure.compose(["dataset=market1502"])


@pytest.mark.parametrize("override, reason", [
    ("dataset.name=${nothere}", "Interpolation key 'nothere' not found"),
    ("dataset.name=${dataset.name}", "Recursive interpolation detected"),
    ("dataset.name=${oc.nothere:1}", "Unsupported interpolation type oc.nothere"),
])
def test_unresolvable_interpolation_is_one_line(override, reason):
    """Composition passes; OmegaConf.resolve raised its own exception, which was a traceback."""
    with pytest.raises(SystemExit) as err:
        configure.compose([override])
    assert str(err.value) == f"conf/: cannot resolve {[override]}: {reason}"


@pytest.mark.parametrize("overrides", [
    [], ["dataset=footage", "dataset.name=campus"], ["clustering=count"], ["clustering=quantile"],
    *([f"dataset={d}"] + c for d in ("market1501", "dukemtmc", "msmt17") for c in ([], ["clustering=quantile"])),
], ids=lambda o: " ".join(o) or "default")
def test_every_shipped_configuration_passes_the_stage_checks(overrides):
    """Each value a stage checks before it starts (params_io) is valid in every shipped preset."""
    import params_io

    params = composed(*overrides)
    for cut in (params_io.intra_cut, params_io.inter_cut):
        cut(params)
    params_io.reranking(params)
    params_io.augment(params)
    params_io.intra_training(params), params_io.optimizer(params, "intra")
    params_io.inter_training(params), params_io.optimizer(params, "inter"), params_io.inter_enabled(params)
    params_io.number(params, "inter.mu", 0)
    params_io.stage_seed(params, 0, 0)
    for key in ("features.batch_size", "plots.tsne_identities", "plots.tsne_max_images", "plots.ranking_queries",
                "plots.top_k"):
        params_io.integer(params, key)
    params_io.integer(params, "plots.seed", minimum=0)


@pytest.mark.parametrize("override, message", [
    ("dataset=foo", "In 'config': Could not find 'dataset/foo'; Available options in 'dataset': dukemtmc, footage, "
                    "market1501, msmt17, synthetic"),
    ("nosuch.key=1", "Could not override 'nosuch.key'; To append to your config use +nosuch.key=1"),
])
def test_a_compose_error_is_one_line_with_the_options(override, message):
    """Hydra's message ran to a dozen lines: the options one per line, then its config search path."""
    with pytest.raises(SystemExit) as err:
        configure.compose([override])
    assert str(err.value) == f"conf/: cannot compose {[override]}: {message}"
