"""Settings objects refuse values out of range with a one-line error naming the field."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from iics.settings import Augment, ClusterCut, InterTraining, IntraTraining, Optimizer, Reranking

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "stages"))
import params_io  # noqa: E402


def test_defaults_and_edge_values_are_accepted():
    Optimizer(lr=0.005)
    Optimizer(lr=0.02, backbone_lr_scale=0.0, momentum=0.0, weight_decay=0.0)
    Augment()
    Augment(pad=0, flip_p=0.0, erasing_p=0.0)
    Augment(pad=10, flip_p=1.0, erasing_p=1.0)
    Reranking()
    Reranking(k1=1, k2=1, lambda_value=0.0)
    Reranking(lambda_value=1.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": 0.0}, r"^lr must be > 0, got 0.0$"),
    ({"lr": -0.01}, r"^lr must be > 0, got -0.01$"),
    ({"lr": math.nan}, r"^lr must be > 0, got nan$"),
    ({"lr": 0.01, "backbone_lr_scale": -0.1}, r"^backbone_lr_scale must be >= 0 .*, got -0.1$"),
    ({"lr": 0.01, "momentum": 1.0}, r"^momentum must be in \[0, 1\), got 1.0$"),
    ({"lr": 0.01, "momentum": -0.5}, r"^momentum must be in \[0, 1\), got -0.5$"),
    ({"lr": 0.01, "weight_decay": -1e-4}, r"^weight_decay must be >= 0, got -0.0001$"),
    ({"lr": "fast"}, r"^lr must be a number > 0, got the text 'fast'$"),
    # PyYAML reads an exponent without a decimal point as text: `lr: 1e-3` is the string '1e-3'.
    ({"lr": "1e-3"}, r"^lr must be a number > 0, got the text '1e-3'; write it as 0.001 \(YAML reads 1e-3 as text, "
                     r"not as a number\)$"),
    ({"lr": 0.01, "weight_decay": "5e-4"}, r"^weight_decay must be a number >= 0, got the text '5e-4'; write it as "
                                           r"0.0005 "),
    ({"lr": "1E-5"}, r"^lr must be a number > 0, got the text '1E-5'; write it as 1.0e-05 "),
    ({"lr": "nan"}, r"^lr must be a number > 0, got the text 'nan'$"),
    # text YAML would read as a number had it not been quoted
    ({"lr": "0.5"}, r"^lr must be a number > 0, got the text '0.5'; write it without quotes \(0.5 unquoted is a "
                    r"number to YAML\)$"),
    ({"lr": True}, r"^lr must be > 0, got True$"),
])
def test_optimizer_out_of_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Optimizer(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"pad": -1}, r"^pad must be an integer >= 0 \(pixels\), got -1$"),
    ({"pad": 2.5}, r"^pad must be an integer >= 0 \(pixels\), got 2.5$"),
    ({"flip_p": 1.01}, r"^flip_p must be a probability in \[0, 1\], got 1.01$"),
    ({"flip_p": -0.1}, r"^flip_p must be a probability in \[0, 1\], got -0.1$"),
    ({"erasing_p": 1.5}, r"^erasing_p must be a probability in \[0, 1\], got 1.5$"),
    ({"flip_p": "half"}, r"^flip_p must be a probability in \[0, 1\], got the text 'half'$"),
])
def test_augment_out_of_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Augment(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"k1": 0}, r"^k1 must be an integer >= 1, got 0$"),
    ({"k1": 20.5}, r"^k1 must be an integer >= 1, got 20.5$"),
    ({"k2": 0}, r"^k2 must be an integer >= 1, got 0$"),
    ({"lambda_value": 1.3}, r"^lambda must be in \[0, 1\], got 1.3$"),
    ({"lambda_value": -0.1}, r"^lambda must be in \[0, 1\], got -0.1$"),
    ({"k2": "6"}, r"^k2 must be an integer >= 1, got '6'$"),
])
def test_reranking_out_of_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Reranking(**kwargs)


def test_training_settings_accept_numpy_integers_and_edge_values():
    IntraTraining(epochs=1, batch_per_camera=1)
    IntraTraining(epochs=np.int64(3), batch_per_camera=np.int32(8))
    InterTraining(epochs=1, ids_per_batch=2, images_per_id=2, margin=0)
    InterTraining(epochs=1, ids_per_batch=16, images_per_id=4, margin=np.float32(0.3))


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0, "batch_per_camera": 8}, r"^epochs must be an integer >= 1, got 0$"),
    ({"epochs": "four", "batch_per_camera": 8}, r"^epochs must be an integer >= 1, got 'four'$"),
    ({"epochs": 4.0, "batch_per_camera": 8}, r"^epochs must be an integer >= 1, got 4.0$"),
    ({"epochs": 4, "batch_per_camera": 0}, r"^batch_per_camera must be an integer >= 1, got 0$"),
    ({"epochs": 4, "batch_per_camera": -2}, r"^batch_per_camera must be an integer >= 1, got -2$"),
    # a bool is no count, though True == 1 passes ">= 1": only the bool check refuses it
    ({"epochs": True, "batch_per_camera": 8}, r"^epochs must be an integer >= 1, got True$"),
])
def test_intra_training_out_of_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IntraTraining(**kwargs)


@pytest.mark.parametrize("change, message", [
    ({"epochs": 0}, r"^epochs must be an integer >= 1, got 0$"),
    ({"ids_per_batch": 1}, r"^ids_per_batch must be an integer >= 2, got 1$"),
    ({"images_per_id": 1}, r"^images_per_id must be an integer >= 2, got 1$"),
    ({"images_per_id": True}, r"^images_per_id must be an integer >= 2, got True$"),
    ({"margin": -0.3}, r"^margin must be a number >= 0, got -0.3$"),
    ({"margin": math.nan}, r"^margin must be a number >= 0, got nan$"),
    ({"margin": "big"}, r"^margin must be a number >= 0, got the text 'big'$"),
])
def test_inter_training_out_of_range(change, message):
    with pytest.raises(ValueError, match=message):
        InterTraining(**{"epochs": 4, "ids_per_batch": 16, "images_per_id": 4, "margin": 0.3, **change})


@pytest.mark.parametrize("method, value, message", [
    ("threshold", "x", r"^threshold cut needs a finite number, got 'x'$"),
    ("threshold", float("nan"), r"^threshold cut needs a finite number, got nan$"),  # nan <= 0 is False: it passed
    ("count", float("inf"), r"^count cut needs a finite number, got inf$"),         # int(inf): OverflowError
    ("quantile", float("nan"), r"^quantile cut needs a finite number, got nan$"),
    ("threshold", 0.0, r"^threshold cut needs a positive distance, got 0.0$"),
    ("count", 2.5, r"^count cut needs a positive integer, got 2.5$"),
    ("quantile", 1.0, r"^quantile cut needs 0 < q < 1, got 1.0$"),
    ("nearest", 0.5, r"^clustering method 'nearest' is not one of count, quantile, threshold$"),
])
def test_cluster_cut_out_of_range(method, value, message):
    with pytest.raises(ValueError, match=message):
        ClusterCut(method, value)


def _shipped_params_with(key: str, value) -> dict:
    """The shipped params.yaml with one dotted key replaced."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    node = params
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    return params


@pytest.mark.parametrize("key, value, read, message", [
    ("augment.erasing_p", 1.5, lambda p: params_io.augment(p), r"augment.erasing_p must be a probability in \[0, 1\], got 1.5"),
    ("augment.pad", "x", lambda p: params_io.augment(p), r"augment.pad must be an integer >= 0 \(pixels\), got 'x'"),
    ("clustering.rerank.k1", 0, lambda p: params_io.reranking(p), r"clustering.rerank.k1 must be an integer >= 1, got 0"),
    ("intra.lr", -0.1, lambda p: params_io.optimizer(p, "intra"), r"intra.lr must be > 0, got -0.1"),
    ("inter.momentum", "high", lambda p: params_io.optimizer(p, "inter"), r"inter.momentum must be a number in \[0, 1\), got the text 'high'"),
    ("intra.lr", "1e-3", lambda p: params_io.optimizer(p, "intra"), r"intra.lr must be a number > 0, got the text '1e-3'; "
                                                                    r"write it as 0.001 \(YAML reads 1e-3 as text, not as a number\)"),
    ("clustering.intra_threshold", "3e-1", lambda p: params_io.intra_cut(p),
     r"clustering.intra_threshold: threshold cut needs a finite number, got '3e-1'; write it as 0.3 \(YAML reads "
     r"3e-1 as text, not as a number\)"),
    ("intra.epochs", 0, lambda p: params_io.intra_training(p), r"intra.epochs must be an integer >= 1, got 0"),
    ("intra.batch_per_camera", 0, lambda p: params_io.intra_training(p), r"intra.batch_per_camera must be an integer >= 1, got 0"),
    ("inter.ids_per_batch", 0, lambda p: params_io.inter_training(p), r"inter.ids_per_batch must be an integer >= 2, got 0"),
    ("inter.margin", -0.3, lambda p: params_io.inter_training(p), r"inter.margin must be a number >= 0, got -0.3"),
    ("inter.enabled", "yes", lambda p: params_io.inter_enabled(p), r"inter.enabled must be true or false, got 'yes'"),
    ("inter.mu", -1, lambda p: params_io.number(p, "inter.mu", 0), r"inter.mu must be a number >= 0, got -1"),
    ("features.batch_size", 0, lambda p: params_io.integer(p, "features.batch_size"), r"features.batch_size must be an integer >= 1, got 0"),
    ("plots.top_k", 0, lambda p: params_io.integer(p, "plots.top_k"), r"plots.top_k must be an integer >= 1, got 0"),
    ("model.seed", "x", lambda p: params_io.stage_seed(p, 0, 1), r"model.seed must be an integer >= 0, got 'x'"),
    ("model.seed", -1, lambda p: params_io.stage_seed(p, 0, 1), r"model.seed must be an integer >= 0, got -1"),
    ("clustering.intra_threshold", "x", lambda p: params_io.intra_cut(p), r"clustering.intra_threshold: threshold cut needs a finite number, got 'x'"),
    ("clustering.threshold", -0.5, lambda p: params_io.inter_cut(p), r"clustering.threshold: threshold cut needs a positive distance, got -0.5"),
    ("clustering.method", "nearest", lambda p: params_io.intra_cut(p), r"clustering.method must be count, quantile or threshold, got 'nearest'"),
])
def test_stage_settings_exit_with_one_line_naming_params_yaml_and_the_key(key, value, read, message):
    """A stage turns a bad value into one line naming params.yaml and the key, not a traceback."""
    read(yaml.safe_load((REPO / "params.yaml").read_text()))  # the shipped values pass
    with pytest.raises(SystemExit, match=f"^params.yaml: {message}$"):
        read(_shipped_params_with(key, value))


@pytest.mark.parametrize("name", [2024, 1.5, True, None, ""])
def test_a_dataset_name_that_is_no_folder_name_is_one_line(name):
    """`-S dataset.name=2024` gives YAML's integer; joined to a path it was a TypeError traceback."""
    import common

    with pytest.raises(SystemExit) as err:
        common.dataset_dir({"dataset": {"name": name}})
    assert str(err.value) == (f"params.yaml: dataset.name must be a folder name, got {name!r}; quote a name YAML "
                              f"would read as a number or bool: -S \"dataset.name='{name}'\"")
    import configure  # the quoted form the message suggests is a name

    assert configure.compose(["dataset=footage", "dataset.name='2024'"]).dataset.name == "2024"


def test_weights_outside_data_weights_are_refused(tmp_path, monkeypatch):
    """init depends on data/weights/ only: a file elsewhere was read but never hashed by DVC, so
    replacing it left the old model in place."""
    import init_model

    monkeypatch.setattr(init_model, "ROOT", tmp_path)
    folder = tmp_path / "data" / "weights"
    folder.mkdir(parents=True)
    (tmp_path / "store").mkdir()
    (folder / "linked.pth").symlink_to(tmp_path / "store" / "net.pth")  # a link in the folder is tracked
    assert init_model.tracked_weights_file("data/weights/net.pth") == str(folder / "net.pth")
    assert init_model.tracked_weights_file(str(folder / "net.pth")) == str(folder / "net.pth")
    assert init_model.tracked_weights_file("data/weights/linked.pth") == str(folder / "linked.pth")
    for outside in (str(tmp_path / "store" / "net.pth"), "data/weights/../net.pth", "data/net.pth"):
        with pytest.raises(SystemExit) as err:
            init_model.tracked_weights_file(outside)
        assert str(err.value) == (
            f"init: model.weights {outside!r} is outside data/weights/, the folder DVC tracks for this stage, so a "
            f"change to the file would not rerun init; copy or link it into data/weights/ and set "
            f"model.weights=data/weights/net.pth")


def test_reranking_settings_come_from_their_own_keys():
    params = {"clustering": {"rerank": {"k1": 5, "k2": 2, "lambda": 0.6}},
              "evaluate": {"rerank": {"enabled": True, "k1": 9, "k2": 4, "lambda": 0.1}}}
    assert params_io.reranking(params) == Reranking(k1=5, k2=2, lambda_value=0.6)
    assert params_io.reranking(params, "evaluate.rerank") == Reranking(k1=9, k2=4, lambda_value=0.1)


@pytest.mark.parametrize("text, message", [
    (None, "params.yaml: not found (compose it from conf/ with python stages/configure.py)"),
    ("intra: {lr: 0.1\n", "params.yaml: not valid YAML (line 2: expected ',' or '}', but got '<stream end>'); "
                          "compose it from conf/ with python stages/configure.py"),
    ("- intra\n", "params.yaml: expected a mapping of settings groups, got list (compose it from conf/ with "
                  "python stages/configure.py)"),
    ("", "params.yaml: expected a mapping of settings groups, got NoneType (compose it from conf/ with "
         "python stages/configure.py)"),
    ("device: auto\ndataset:\n", "params.yaml: dataset has no value (compose it from conf/ with python "
                                  "stages/configure.py)"),  # was a TypeError where a stage read dataset.name
    ("device: auto\ndataset: 5\n", "params.yaml: dataset must be a group of settings, got 5 (compose it from "
                                    "conf/ with python stages/configure.py)"),  # was a TypeError too
])
def test_a_params_file_that_is_missing_or_no_yaml_mapping_is_one_line(tmp_path, monkeypatch, text, message):
    """Were a FileNotFoundError, a ScannerError and a TypeError traceback."""
    import common

    monkeypatch.setattr(common, "PARAMS", tmp_path / "params.yaml")
    if text is not None:
        (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(SystemExit) as err:
        common.load_params()
    assert str(err.value) == message


def test_the_groups_checked_on_loading_are_the_shipped_params_groups():
    import common

    shipped = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(common.GROUPS) == {key for key, value in shipped.items() if isinstance(value, dict)}


def _loaded_params_without(tmp_path, monkeypatch, key: str) -> dict:
    """The shipped params.yaml with dotted `key` deleted, read as the stages read it."""
    import common

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    *parents, leaf = key.split(".")
    node = params
    for part in parents:
        node = node[part]
    del node[leaf]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setattr(common, "PARAMS", tmp_path / "params.yaml")
    return common.load_params()


@pytest.mark.parametrize("key, read", [
    ("inter.momentum", lambda p: params_io.optimizer(p, "inter")),  # was KeyError: 'momentum'
    ("augment.pad", params_io.augment),
    ("clustering.rerank", params_io.reranking),
    ("features.batch_size", lambda p: params_io.integer(p, "features.batch_size")),
    ("model.backbone", lambda p: p["model"]["backbone"]),  # a stage's own read
    ("device", params_io.compute_device),
])
def test_a_missing_key_is_one_line_naming_it(tmp_path, monkeypatch, key, read):
    params = _loaded_params_without(tmp_path, monkeypatch, key)
    with pytest.raises(SystemExit) as err:
        read(params)
    assert str(err.value) == (f"params.yaml: {key} is missing (compose it from conf/ with python "
                              "stages/configure.py, or add the key)")


@pytest.mark.parametrize("stage", ["intra", "inter"])
def test_a_deleted_stage_threshold_is_an_error_not_the_shared_threshold(tmp_path, monkeypatch, stage):
    """`clustering.intra_threshold: null` means clustering.threshold (conf/config.yaml); a deleted
    key silently meant the same, changing the per-camera cut from 0.3 to 0.45."""
    params = _loaded_params_without(tmp_path, monkeypatch, f"clustering.{stage}_threshold")
    with pytest.raises(SystemExit) as err:
        params_io.intra_cut(params) if stage == "intra" else params_io.inter_cut(params)
    assert str(err.value) == (f"params.yaml: clustering.{stage}_threshold is missing (null uses clustering.threshold; "
                              "compose params.yaml from conf/ with python stages/configure.py)")
    params["clustering"][f"{stage}_threshold"] = None
    assert (params_io.intra_cut(params) if stage == "intra" else params_io.inter_cut(params)) == ClusterCut("threshold", 0.45)


def test_a_group_that_holds_a_value_is_one_line():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["intra"] = 5
    with pytest.raises(SystemExit, match=r"^params.yaml: intra must be a group of settings, got 5$"):
        params_io.optimizer(params, "intra")
    params["features"] = "big"
    with pytest.raises(SystemExit, match=r"^params.yaml: features must be a group of settings \(with batch_size\), "
                                         r"got 'big'$"):
        params_io.integer(params, "features.batch_size")


@pytest.mark.parametrize("weights", ["data/weights", "data/weights/", "data/weights/sub"])
def test_weights_that_name_a_folder_say_so(tmp_path, monkeypatch, weights):
    """Were 'is outside data/weights/' (the folder itself) or 'ImageNet weights not found' (a sub-folder)."""
    import init_model

    monkeypatch.setattr(init_model, "ROOT", tmp_path)
    (tmp_path / "data" / "weights" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "weights" / "net.pth").write_bytes(b"")
    with pytest.raises(SystemExit) as err:
        init_model.tracked_weights_file(weights)
    assert str(err.value) == (f"init: model.weights {weights!r} is a folder, expected the weights file in it "
                              "(data/weights/ holds net.pth): set model.weights=data/weights/<file>")


def _init_with_weights(tmp_path, monkeypatch, write) -> str:
    """init_model.main's one-line exit for model.weights=data/weights/net.pth as `write` leaves it."""
    import init_model

    monkeypatch.setattr(init_model, "ROOT", tmp_path)
    (tmp_path / "data" / "weights").mkdir(parents=True)
    write(tmp_path / "data" / "weights" / "net.pth")
    params = {"model": {"backbone": "resnet18", "weights": "data/weights/net.pth", "seed": 0},
              "dataset": {"name": "synthetic"}}
    monkeypatch.setattr(init_model, "load_params", lambda: params)
    with pytest.raises(SystemExit) as err:
        init_model.main()
    return str(err.value)


def test_missing_weights_are_named_relative_to_the_project(tmp_path, monkeypatch):
    message = _init_with_weights(tmp_path, monkeypatch, lambda path: None)
    assert message == ("init: data/weights/net.pth: ImageNet weights not found. README \"ImageNet weights\" says which "
                       "file to fetch; or set model.weights=null to start from random weights (far below the paper's "
                       "results)")


def test_a_pickled_module_as_weights_is_one_plain_line(tmp_path, monkeypatch):
    """torch's refusal is a paragraph with terminal colour codes, which were shown raw, after the
    absolute path."""
    import torch

    message = _init_with_weights(tmp_path, monkeypatch, lambda path: torch.save(torch.nn.Linear(2, 2), path))
    assert message == ("init: data/weights/net.pth: it holds a pickled torch.nn.modules.linear.Linear object, not "
                       "only tensors, and is not loaded as one: code in a pickle could run; save its state_dict() "
                       "instead")
    assert "\x1b" not in message and str(tmp_path) not in message
