"""The plain settings objects the clustering and training functions take.

Each is validated when made: a value out of range raises a one-line ValueError naming the field
and its valid range. The module imports torch (for `Optimizer.build`) but not the clustering or
training code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

METHODS = ("count", "quantile", "threshold")


def _check(ok: bool, name: str, value: object, valid: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {valid}, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ClusterCut:
    """How to cut the tree: `method` in METHODS and its `value` (count, quantile or distance)."""

    method: str
    value: float

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"clustering method {self.method!r} is not one of {', '.join(METHODS)}")
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
        _check(_is_int(self.k1) and self.k1 >= 1, "rerank k1", self.k1, "an integer >= 1")
        _check(_is_int(self.k2) and self.k2 >= 1, "rerank k2", self.k2, "an integer >= 1")
        _check(0 <= self.lambda_value <= 1, "rerank lambda", self.lambda_value, "in [0, 1]")


@dataclass(frozen=True)
class Optimizer:
    """SGD settings: heads use `lr`, the backbone `lr * backbone_lr_scale`."""

    lr: float
    backbone_lr_scale: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def __post_init__(self):
        _check(self.lr > 0, "lr", self.lr, "> 0")
        _check(self.backbone_lr_scale >= 0, "backbone_lr_scale", self.backbone_lr_scale, ">= 0 (0 freezes the backbone)")
        _check(0 <= self.momentum < 1, "momentum", self.momentum, "in [0, 1)")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")

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
        _check(_is_int(self.pad) and self.pad >= 0, "augment pad", self.pad, "an integer >= 0 (pixels)")
        _check(0 <= self.flip_p <= 1, "augment flip_p", self.flip_p, "a probability in [0, 1]")
        _check(0 <= self.erasing_p <= 1, "augment erasing_p", self.erasing_p, "a probability in [0, 1]")
