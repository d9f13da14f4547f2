"""Turning params.yaml values into the plain settings objects and numbers `iics` takes.

A value of the wrong type or out of range ends the stage with one line naming params.yaml and the
key, e.g. `params.yaml: intra.lr must be > 0, got -0.1`, before any work is done.
"""
from __future__ import annotations

import torch

from iics.runtime import resolve_device, resolve_precision
from iics.settings import (
    Augment,
    ClusterCut,
    InterTraining,
    IntraTraining,
    Optimizer,
    Reranking,
    check_at_least,
    check_count,
)


def _checked(where: str, make, *args, **kwargs):
    """`make(*args, **kwargs)`, or a one-line exit: 'params.yaml: ' + `where` + its ValueError."""
    try:
        return make(*args, **kwargs)
    except ValueError as error:
        raise SystemExit(f"params.yaml: {where}{error}") from None


def _value(params: dict, key: str):
    """The value at dotted `key`. params.yaml as `load_params` reads it ends the stage in one line
    for a key that is missing; a group that holds a plain value instead of its keys ends it here."""
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(params, dict):
            group = ".".join(parts[:depth])
            raise SystemExit(f"params.yaml: {group} must be a group of settings (with {'.'.join(parts[depth:])}), "
                             f"got {params!r}")
        params = params[part]
    return params


def _group(params: dict, key: str) -> dict:
    """The group of settings at dotted `key` (e.g. 'intra'), checked to be one."""
    group = _value(params, key)
    if not isinstance(group, dict):
        raise SystemExit(f"params.yaml: {key} must be a group of settings, got {group!r}")
    return group


def integer(params: dict, key: str, minimum: int = 1) -> int:
    """The integer at dotted `key` (e.g. 'features.batch_size'), checked to be >= `minimum`."""
    value = _value(params, key)
    _checked("", check_count, key, value, minimum)
    return value


def number(params: dict, key: str, minimum: float) -> float:
    """The number at dotted `key` (e.g. 'inter.mu'), checked to be >= `minimum`."""
    value = _value(params, key)
    _checked("", check_at_least, key, value, minimum)
    return value


def _cut(params: dict, stage: str) -> ClusterCut:
    c = _group(params, "clustering")
    method = c["method"]
    if method == "count":
        return _checked(f"clustering.{stage}_count: ", ClusterCut, "count", c[f"{stage}_count"])
    if method == "quantile":
        return _checked(f"clustering.{stage}_quantile: ", ClusterCut, "quantile", c[f"{stage}_quantile"])
    if method == "threshold":
        # null means "the shared clustering.threshold" (conf/config.yaml); a deleted key is an error,
        # not that fallback: it would change the per-camera cut without a word.
        if f"{stage}_threshold" not in c:
            raise SystemExit(f"params.yaml: clustering.{stage}_threshold is missing (null uses "
                             f"clustering.threshold; compose params.yaml from conf/ with python stages/configure.py)")
        key = "threshold" if c[f"{stage}_threshold"] is None else f"{stage}_threshold"
        return _checked(f"clustering.{key}: ", ClusterCut, "threshold", c[key])
    raise SystemExit(f"params.yaml: clustering.method must be count, quantile or threshold, got {method!r}")


def intra_cut(params: dict) -> ClusterCut:
    return _cut(params, "intra")


def inter_cut(params: dict) -> ClusterCut:
    return _cut(params, "inter")


def reranking(params: dict, key: str = "clustering.rerank") -> Reranking:
    """The k-reciprocal settings at dotted `key`: the clustering's, or `evaluate.rerank`."""
    r = _group(params, key)
    return _checked(f"{key}.", Reranking, k1=r["k1"], k2=r["k2"], lambda_value=r["lambda"])


def evaluation_reranking(params: dict) -> Reranking | None:
    """`evaluate.rerank`'s settings when it is enabled, else None."""
    return reranking(params, "evaluate.rerank") if flag(params, "evaluate.rerank.enabled") else None


def optimizer(params: dict, group: str) -> Optimizer:
    """SGD settings of the `group` ('intra' or 'inter') of params.yaml."""
    g = _group(params, group)
    return _checked(
        f"{group}.", Optimizer, lr=g["lr"], backbone_lr_scale=g["backbone_lr_scale"],
        momentum=g["momentum"], weight_decay=g["weight_decay"],
    )


def augment(params: dict) -> Augment:
    a = _group(params, "augment")
    return _checked("augment.", Augment, pad=a["pad"], flip_p=a["flip_p"], erasing_p=a["erasing_p"])


def intra_training(params: dict) -> IntraTraining:
    i = _group(params, "intra")
    return _checked("intra.", IntraTraining, epochs=i["epochs"], batch_per_camera=i["batch_per_camera"])


def inter_training(params: dict) -> InterTraining:
    i = _group(params, "inter")
    return _checked(
        "inter.", InterTraining, epochs=i["epochs"], ids_per_batch=i["ids_per_batch"],
        images_per_id=i["images_per_id"], margin=i["margin"],
    )


def flag(params: dict, key: str) -> bool:
    """The true or false at dotted `key` (text such as 'no' would read as true)."""
    value = _value(params, key)
    if not isinstance(value, bool):
        raise SystemExit(f"params.yaml: {key} must be true or false, got {value!r}")
    return value


def inter_enabled(params: dict) -> bool:
    """`inter.enabled`: true or false."""
    return flag(params, "inter.enabled")


def stage_seed(params: dict, t: int, offset: int) -> int:
    """A distinct, reproducible seed for each stage of each round, from `model.seed`."""
    return integer(params, "model.seed", minimum=0) * 100_003 + t * 101 + offset


def compute_device(params: dict) -> torch.device:
    """`device` resolved (`auto` -> CUDA when present)."""
    return _checked("", resolve_device, params["device"])


def device_and_precision(params: dict) -> tuple[torch.device, bool]:
    """`device` resolved, and whether `precision` means bfloat16 autocast on it."""
    resolved = compute_device(params)
    return resolved, _checked("", resolve_precision, params["precision"], resolved)
