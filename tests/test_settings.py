"""Settings objects refuse values out of range with a one-line error naming the field."""
import math

import pytest

from iics.settings import Augment, Optimizer, Reranking


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
])
def test_optimizer_out_of_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Optimizer(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"pad": -1}, r"^augment pad must be an integer >= 0 \(pixels\), got -1$"),
    ({"pad": 2.5}, r"^augment pad must be an integer >= 0 \(pixels\), got 2.5$"),
    ({"flip_p": 1.01}, r"^augment flip_p must be a probability in \[0, 1\], got 1.01$"),
    ({"flip_p": -0.1}, r"^augment flip_p must be a probability in \[0, 1\], got -0.1$"),
    ({"erasing_p": 1.5}, r"^augment erasing_p must be a probability in \[0, 1\], got 1.5$"),
])
def test_augment_out_of_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Augment(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"k1": 0}, r"^rerank k1 must be an integer >= 1, got 0$"),
    ({"k1": 20.5}, r"^rerank k1 must be an integer >= 1, got 20.5$"),
    ({"k2": 0}, r"^rerank k2 must be an integer >= 1, got 0$"),
    ({"lambda_value": 1.3}, r"^rerank lambda must be in \[0, 1\], got 1.3$"),
    ({"lambda_value": -0.1}, r"^rerank lambda must be in \[0, 1\], got -0.1$"),
])
def test_reranking_out_of_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Reranking(**kwargs)


def test_stage_settings_from_params_exit_with_one_line_naming_params_yaml():
    """A stage turns an out-of-range value into one line naming params.yaml, not a traceback."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "stages"))
    from params_io import augment, optimizer, reranking

    with pytest.raises(SystemExit, match=r"^params.yaml: augment erasing_p must be a probability in \[0, 1\], got 1.5$"):
        augment({"augment": {"pad": 10, "flip_p": 0.5, "erasing_p": 1.5}})
    with pytest.raises(SystemExit, match=r"^params.yaml: rerank k1 must be an integer >= 1, got 0$"):
        reranking({"clustering": {"rerank": {"k1": 0, "k2": 6, "lambda": 0.3}}})
    with pytest.raises(SystemExit, match="^params.yaml: .*lr"):
        optimizer({"lr": -0.1, "backbone_lr_scale": 0.1, "momentum": 0.9, "weight_decay": 5e-4})
