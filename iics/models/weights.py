"""Loading torchvision-format ImageNet checkpoints into the backbones.

A backbone whose checkpoints need renaming (ConvNeXt: the official release, torchvision's
final LayerNorm) provides ``convert_imagenet_state_dict(state) -> state``; the loader applies
it to the checkpoint before matching keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Iterable

import torch
from torch import nn

from iics.checksum import file_digest
from iics.errors import one_line_reason, pickled_object

_MAX_LISTED = 10
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.pth?$")


def _is_ignored(key: str) -> bool:
    """Checkpoint keys that are dropped before matching (classifier, BN counters)."""
    return key.startswith(("fc.", "classifier.")) or key.endswith("num_batches_tracked")


def _may_be_missing(key: str) -> bool:
    """Model keys the checkpoint need not provide (AIBN mixing weights)."""
    return key == "alpha" or key.endswith(".alpha")


def _summarise(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        shown += f", ... (+{len(items) - _MAX_LISTED} more)"
    return f"[{shown}]"


def check_torchvision_hash(path: str | os.PathLike) -> bool:
    """Verify a file named the torchvision way, ``<name>-<hex>.pth``: the hex is the start of
    its SHA-256. Returns True when checked, False when the name carries no hash; raises
    ValueError on a mismatch (a damaged or different file)."""
    path = os.fspath(path)
    match = _HASH_IN_NAME.search(os.path.basename(path))
    if match is None:
        return False
    expected = match.group(1)
    found = file_digest(path, "sha256")
    if not found.startswith(expected):
        raise ValueError(
            f"{path}: SHA-256 starts with {found[:len(expected)]}, but the file name promises {expected} "
            "(torchvision names weight files after their SHA-256); the download is damaged or a different file"
        )
    return True


def _read_state_dict(path: str) -> Mapping[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"ImageNet weights not found: {path!r} (expected a torchvision-format "
            "state dict saved with torch.save)"
        )
    check_torchvision_hash(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror or error})") from None
    except Exception as error:  # noqa: BLE001 - bytes that are no weights file make the unpickler raise anything
        if pickled_object(error) is not None:  # readable, but objects, not a state dict
            raise ValueError(f"{path}: {one_line_reason(error)}") from None
        raise ValueError(f"{path}: not a readable PyTorch weights file, or a truncated one "
                         f"({type(error).__name__}: {one_line_reason(error)})") from None
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            inner = obj.get(wrapper)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise ValueError(
            f"{path}: expected a torchvision-format state dict (mapping of names to "
            f"tensors), got {type(obj).__name__}"
        )
    return obj


def load_imagenet_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Copy a torchvision-format state dict from ``path`` into ``model`` in place.

    If the model has ``convert_imagenet_state_dict``, the checkpoint is first passed through
    it (renaming keys into the model's names). ``fc.*`` / ``classifier.*`` and
    ``num_batches_tracked`` entries are then ignored; AIBN ``alpha`` parameters may be absent
    (they keep their initial value). Any other missing or unexpected key, or a shape mismatch,
    raises ``ValueError``. BatchNorm entries load into AIBN layers under the same names.
    Returns ``model``.
    """
    path = os.fspath(path)
    state = _read_state_dict(path)
    convert = getattr(model, "convert_imagenet_state_dict", None)
    if convert is not None:
        state = convert(state)
    source = {k: v for k, v in state.items() if not _is_ignored(k)}
    target = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}

    missing = [k for k in target if k not in source and not _may_be_missing(k)]
    unexpected = [k for k in source if k not in target]
    mismatched = [
        f"{k} (checkpoint {tuple(source[k].shape)} vs model {tuple(target[k].shape)})"
        for k in target
        if k in source and source[k].shape != target[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys {_summarise(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys {_summarise(unexpected)}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches {_summarise(mismatched)}")
        raise ValueError(
            f"{path}: checkpoint does not match the model: " + "; ".join(parts)
        )

    model.load_state_dict(source, strict=False)
    return model
