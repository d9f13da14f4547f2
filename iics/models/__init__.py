"""Backbones (ResNet and ConvNeXt with optional AIBN, MobileNetV2), classifier head and weight loading."""

from __future__ import annotations

from typing import Callable

from torch import nn

from .aibn import AIBN2d, estimate_running_statistics
from .convnext import ConvNeXt, convnext_small, convnext_tiny
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
    "convnext_tiny": lambda: convnext_tiny(aibn=False),
    "convnext_tiny_aibn": lambda: convnext_tiny(aibn=True),
    "convnext_small": lambda: convnext_small(aibn=False),
    "convnext_small_aibn": lambda: convnext_small(aibn=True),
}

BACKBONES: tuple[str, ...] = tuple(_REGISTRY)

# Backbones whose AIBN layers stand where the ImageNet network has LayerNorms, so no ImageNet
# checkpoint holds their running statistics (ResNet's AIBN loads BatchNorm's).
_AIBN_WITHOUT_IMAGENET_STATISTICS = ("convnext_tiny_aibn", "convnext_small_aibn")


def statistics_from_train_images(name: str, weights: str | None) -> bool:
    """Whether backbone ``name`` loaded from ImageNet ``weights`` has AIBN running statistics
    that must be estimated from the train images (``estimate_running_statistics``)."""
    return weights is not None and name in _AIBN_WITHOUT_IMAGENET_STATISTICS


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
    "ConvNeXt",
    "MobileNetV2",
    "ResNet",
    "build_backbone",
    "estimate_running_statistics",
    "convnext_small",
    "convnext_tiny",
    "load_imagenet_weights",
    "mobilenet_v2",
    "resnet18",
    "resnet50",
    "statistics_from_train_images",
]
