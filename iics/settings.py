"""The plain settings objects the clustering and training functions take, validated when made.

Kept apart from the code that uses them, so that reading settings (stages/params_io.py) does not
import the clustering and training code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

METHODS = ("count", "quantile", "threshold")


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


@dataclass(frozen=True)
class Optimizer:
    """SGD settings: heads use `lr`, the backbone `lr * backbone_lr_scale`."""

    lr: float
    backbone_lr_scale: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4

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
