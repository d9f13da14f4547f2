"""Turning params.yaml groups into the plain settings objects `iics` takes."""
from __future__ import annotations

import torch

from iics.runtime import resolve_device, resolve_precision
from iics.settings import Augment, ClusterCut, Optimizer, Reranking


def _checked(make, *args, **kwargs):
    """A settings object, or a one-line exit naming params.yaml when a value is out of range."""
    try:
        return make(*args, **kwargs)
    except ValueError as error:
        raise SystemExit(f"params.yaml: {error}") from None


def _cut(params: dict, stage: str) -> ClusterCut:
    c = params["clustering"]
    method = c["method"]
    if method == "count":
        return _checked(ClusterCut, "count", c[f"{stage}_count"])
    if method == "quantile":
        return _checked(ClusterCut, "quantile", c[f"{stage}_quantile"])
    if method == "threshold":
        override = c.get(f"{stage}_threshold")
        return _checked(ClusterCut, "threshold", c["threshold"] if override is None else override)
    raise SystemExit(f"params.yaml: clustering.method must be count, quantile or threshold, got {method!r}")


def intra_cut(params: dict) -> ClusterCut:
    return _cut(params, "intra")


def inter_cut(params: dict) -> ClusterCut:
    return _cut(params, "inter")


def reranking(params: dict) -> Reranking:
    r = params["clustering"]["rerank"]
    return _checked(Reranking, k1=r["k1"], k2=r["k2"], lambda_value=r["lambda"])


def optimizer(group: dict) -> Optimizer:
    return _checked(
        Optimizer, lr=group["lr"], backbone_lr_scale=group["backbone_lr_scale"],
        momentum=group["momentum"], weight_decay=group["weight_decay"],
    )


def augment(params: dict) -> Augment:
    a = params["augment"]
    return _checked(Augment, pad=a["pad"], flip_p=a["flip_p"], erasing_p=a["erasing_p"])


def compute_device(params: dict) -> torch.device:
    """`device` resolved (`auto` -> CUDA when present)."""
    return _checked(resolve_device, params["device"])


def device_and_precision(params: dict) -> tuple[torch.device, bool]:
    """`device` resolved, and whether `precision` means bfloat16 autocast on it."""
    resolved = compute_device(params)
    return resolved, _checked(resolve_precision, params["precision"], resolved)
