"""Backbones (ResNet with optional AIBN, MobileNetV2), classifier head and weight loading."""

from __future__ import annotations

from typing import Callable

from torch import nn

from .aibn import AIBN2d
from .heads import ClassifierHead
from .mobilenet import MobileNetV2, mobilenet_v2
from .resnet import ResNet, resnet18, resnet50
from .weights import load_imagenet_weights

_REGISTRY: dict[str, Callable[[], nn.Module]] = {
    "resnet18": lambda: resnet18(aibn=False),
    "resnet18_aibn": lambda: resnet18(aibn=True),
    "resnet50": lambda: resnet50(aibn=False),
    "resnet50_aibn": lambda: resnet50(aibn=True),
    "mobilenet_v2": mobilenet_v2,
}

BACKBONES: tuple[str, ...] = tuple(_REGISTRY)


def build_backbone(name: str, weights: str | None = None) -> nn.Module:
    """Build backbone ``name``; if ``weights`` is given, load that ImageNet state dict."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; valid names: {', '.join(BACKBONES)}"
        ) from None
    model = factory()
    if weights is not None:
        load_imagenet_weights(model, weights)
    return model


__all__ = [
    "AIBN2d",
    "BACKBONES",
    "ClassifierHead",
    "MobileNetV2",
    "ResNet",
    "build_backbone",
    "load_imagenet_weights",
    "mobilenet_v2",
    "resnet18",
    "resnet50",
]
