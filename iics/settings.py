"""The plain settings objects the clustering and training functions take.

Each is validated when made: a value out of range raises a one-line ValueError naming the field
and its valid range. The module imports torch (for `Optimizer.build`) but not the clustering or
training code.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

METHODS = ("count", "quantile", "threshold")


def _check(ok: bool, name: str, value: object, valid: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {valid}, got {value!r}")


def _yaml_float(number: float) -> str:
    """`number` written so that YAML 1.1 (PyYAML) reads it as a float: 0.001, or 1.0e-05 (its
    exponent needs a decimal point before it and a sign)."""
    text = repr(number)
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


def text_number_hint(value: object) -> str:
    """For text that Python reads as a finite number, how to write it as one; else ''. Either YAML
    reads it as text when written bare ('1e-3': PyYAML wants a decimal point before an exponent)
    or it was quoted ('5')."""
    if not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""
    import yaml  # only on this error path

    if not isinstance(yaml.safe_load(value), str):
        return f"; write it without quotes ({value.strip()} unquoted is a number to YAML)"
    return f"; write it as {_yaml_float(number)} (YAML reads {value.strip()} as text, not as a number)"


def _check_number(ok: bool, name: str, value: object, valid: str) -> None:
    """`_check` for a real number: text (a hand-written `lr: 1e-3` is text to YAML) is named as
    text, with the number to write where it reads as one."""
    if isinstance(value, str):
        valid = valid if valid.startswith("a ") else f"a number {valid}"
        raise ValueError(f"{name} must be {valid}, got the text {value!r}{text_number_hint(value)}")
    _check(ok, name, value, valid)


def _is_int(value: object) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_number(value: object) -> bool:
    """A finite Python or NumPy real number, not a bool and not text (comparing text with a number
    would raise a TypeError instead of naming the field; NaN passes no comparison's check, so a
    range test alone let `nan <= 0` through, and infinity made `int()` overflow)."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, numbers.Integral) or math.isfinite(value)  # an int of any size is finite


def check_count(name: str, value: object, minimum: int = 1) -> None:
    """A ValueError naming `name` unless `value` is an integer >= `minimum`."""
    _check(_is_int(value) and value >= minimum, name, value, f"an integer >= {minimum}")


def check_at_least(name: str, value: object, minimum: float) -> None:
    """A ValueError naming `name` unless `value` is a number >= `minimum` (NaN is not)."""
    _check_number(_is_number(value) and value >= minimum, name, value, f"a number >= {minimum}")


def check_one_each(what: str, count: int, **arrays: object) -> None:
    """Each of `arrays` (anything with a length) has `count` entries, one per `what` ("images",
    "feature rows"): a ValueError naming the first that has not."""
    for name, values in arrays.items():
        if len(values) != count:
            raise ValueError(f"{name}: {len(values)} entries for {count} {what}")


@dataclass(frozen=True)
class ClusterCut:
    """How to cut the tree: `method` in METHODS and its `value` (count, quantile or distance)."""

    method: str
    value: float

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"clustering method {self.method!r} is not one of {', '.join(METHODS)}")
        if not _is_number(self.value):
            raise ValueError(f"{self.method} cut needs a finite number, got {self.value!r}{text_number_hint(self.value)}")
        if self.method == "count" and (self.value < 1 or int(self.value) != self.value):
            raise ValueError(f"count cut needs a positive integer, got {self.value!r}")
        if self.method == "quantile" and not 0 < self.value < 1:
            raise ValueError(f"quantile cut needs 0 < q < 1, got {self.value!r}")
        if self.method == "threshold" and self.value <= 0:
            raise ValueError(f"threshold cut needs a positive distance, got {self.value!r}")


@dataclass(frozen=True)
class Reranking:
    """k-reciprocal re-ranking settings."""

    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3

    def __post_init__(self):
        check_count("k1", self.k1)
        check_count("k2", self.k2)
        _check_number(_is_number(self.lambda_value) and 0 <= self.lambda_value <= 1, "lambda", self.lambda_value, "in [0, 1]")


@dataclass(frozen=True)
class Optimizer:
    """SGD settings: heads use `lr`, the backbone `lr * backbone_lr_scale`."""

    lr: float
    backbone_lr_scale: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def __post_init__(self):
        _check_number(_is_number(self.lr) and self.lr > 0, "lr", self.lr, "> 0")
        _check_number(_is_number(self.backbone_lr_scale) and self.backbone_lr_scale >= 0, "backbone_lr_scale",
               self.backbone_lr_scale, ">= 0 (0 freezes the backbone)")
        _check_number(_is_number(self.momentum) and 0 <= self.momentum < 1, "momentum", self.momentum, "in [0, 1)")
        _check_number(_is_number(self.weight_decay) and self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")

    def build(self, backbone: nn.Module, heads: list[nn.Module]) -> torch.optim.SGD:
        head_params = [p for h in heads for p in h.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in backbone.parameters() if p.requires_grad], "lr": self.lr * self.backbone_lr_scale},
            {"params": head_params, "lr": self.lr},
        ]
        return torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)


@dataclass(frozen=True)
class Augment:
    """Training augmentation settings (see iics.augment.train_transform)."""

    pad: int = 10
    flip_p: float = 0.5
    erasing_p: float = 0.5

    def __post_init__(self):
        _check(_is_int(self.pad) and self.pad >= 0, "pad", self.pad, "an integer >= 0 (pixels)")
        _check_number(_is_number(self.flip_p) and 0 <= self.flip_p <= 1, "flip_p", self.flip_p, "a probability in [0, 1]")
        _check_number(_is_number(self.erasing_p) and 0 <= self.erasing_p <= 1, "erasing_p", self.erasing_p,
               "a probability in [0, 1]")


@dataclass(frozen=True)
class IntraTraining:
    """Intra-camera training length and batch: `batch_per_camera` images from every camera per step."""

    epochs: int
    batch_per_camera: int

    def __post_init__(self):
        check_count("epochs", self.epochs)
        check_count("batch_per_camera", self.batch_per_camera)


@dataclass(frozen=True)
class InterTraining:
    """Inter-camera training length, PK batch shape and the triplet margin. A batch-hard triplet
    needs a positive and a negative for its anchors: at least 2 identities x 2 images."""

    epochs: int
    ids_per_batch: int
    images_per_id: int
    margin: float

    def __post_init__(self):
        check_count("epochs", self.epochs)
        check_count("ids_per_batch", self.ids_per_batch, 2)
        check_count("images_per_id", self.images_per_id, 2)
        check_at_least("margin", self.margin, 0)
