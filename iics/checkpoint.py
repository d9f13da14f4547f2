"""Saving and loading backbones between pipeline stages."""
from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from iics.errors import FileError, one_line_reason
from iics.models import build_backbone


class CheckpointError(FileError):
    """A checkpoint file that is missing, cannot be read, or does not hold what the caller asked
    for (`path`, `reason`)."""


def save_backbone(
    model: nn.Module,
    name: str,
    path: str | os.PathLike,
    heads: list[nn.Module] | None = None,
    input_size: tuple[int, int] | None = None,
) -> None:
    """Write the backbone (and optionally classifier heads) atomically to `path`. `input_size`
    is the (height, width) of the images the model was trained on, kept so that the file alone
    says how to feed it new crops (`iics.embedding`); None for a model not trained yet."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "backbone": name,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if input_size is not None:
        height, width = (int(v) for v in input_size)
        if height < 1 or width < 1:
            raise ValueError(f"input_size must be a positive (height, width), got {tuple(input_size)}")
        payload["input_size"] = [height, width]
    if heads is not None:
        payload["heads"] = [
            {"num_classes": h.classifier.out_features, "state_dict": {k: v.detach().cpu() for k, v in h.state_dict().items()}}
            for h in heads
        ]
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _read(path: str | os.PathLike, mmap: bool = False) -> dict:
    """The checkpoint's dict, checked. With ``mmap`` the tensors are mapped, not read: for
    looking at the other entries of a file whose weights are loaded elsewhere."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint not found (expected a file written by an earlier stage)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except OSError as error:
        raise CheckpointError(path, f"cannot be read ({error.strerror or error})") from None
    except Exception as error:  # noqa: BLE001 - bytes that are no checkpoint make the unpickler raise anything
        reason = one_line_reason(error)
        if not isinstance(error, (RuntimeError, pickle.UnpicklingError, EOFError, ValueError)):
            reason = f"{type(error).__name__}: {reason}"  # an IndexError's text alone ('101') says nothing
        raise CheckpointError(path, f"not a readable PyTorch checkpoint, or a truncated one ({reason})") from None
    if (not isinstance(payload, dict) or not isinstance(payload.get("backbone"), str)
            or not isinstance(payload.get("state_dict"), dict)):
        raise CheckpointError(path, "not an iics checkpoint (expected keys 'backbone', a name, and 'state_dict', "
                                    "a dict of tensors)")
    return payload


def load_backbone(path: str | os.PathLike, expected_name: str | None = None) -> tuple[nn.Module, str]:
    """Rebuild the backbone stored in `path`; returns (model, backbone name). A file that is
    missing, unreadable, holds another backbone than `expected_name` or weights that do not fit
    its backbone is a CheckpointError."""
    payload = _read(path)
    name = payload["backbone"]
    if expected_name is not None and name != expected_name:
        raise CheckpointError(path, f"holds a {name!r} backbone but the configuration asks for {expected_name!r}")
    try:
        model = _holding(lambda: build_backbone(name), payload["state_dict"])
    except (ValueError, RuntimeError) as error:  # an unknown name; missing, extra or misshapen weights
        raise CheckpointError(path, f"its {name!r} weights cannot be loaded ({one_line_reason(error)})") from None
    return model, name


def _holding(build: Callable[[], nn.Module], state: dict) -> nn.Module:
    """The module `build()` makes, with the tensors of `state` as its parameters and buffers (each
    parameter keeping the module's `requires_grad`). Built on the meta device, the module is only
    its structure: its random initialisation, which the file's tensors replace anyway, would take
    longer than building on the meta device and reading them (ResNet-50-AIBN on one CPU core: built
    0.23 s, loaded 0.11 s; benchmarks/startup.py). A ValueError or RuntimeError as `build` or
    `load_state_dict` raise it."""
    with torch.device("meta"):
        module = build()
    module.load_state_dict(_as_built(module, state), assign=True)
    return module


def _as_built(model: nn.Module, state: dict) -> dict:
    """`state` with each tensor in the dtype and layout of `model`'s (meta) tensor in its place, as
    a copy into the built network would leave it: a channels_last weight saved by a bf16 run
    comes back in the built strides (a 1 x 1 kernel's too, whose strides differ though its memory
    order does not), a float64 one as float32. Misshapen tensors are left to load_state_dict."""
    built = model.state_dict()
    laid_out = {}
    for key, value in state.items():
        like = built.get(key)
        if (isinstance(value, torch.Tensor) and like is not None and value.shape == like.shape
                and (value.dtype != like.dtype or value.stride() != like.stride())):
            value = torch.empty_strided(like.shape, like.stride(), dtype=like.dtype).copy_(value)
        laid_out[key] = value
    return laid_out


def trained_input_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """The (height, width) the model in `path` was trained on, or None when the file records
    none (an untrained `init` model, or a file written before the size was kept)."""
    size = _read(path, mmap=True).get("input_size")  # the weights stay on disk
    if size is None:
        return None
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise CheckpointError(path, f"records input_size {size!r}; expected [height, width], two positive integers")
    return int(size[0]), int(size[1])


def load_heads(path: str | os.PathLike, feature_dim: int) -> list[nn.Module]:
    """Rebuild the classifier heads stored beside a backbone in `path`."""
    from iics.models import ClassifierHead

    payload = _read(path, mmap=True)  # only the heads' tensors are read; the backbone's stay on disk
    if "heads" not in payload:
        raise CheckpointError(path, "checkpoint has no classifier heads (expected an intra-camera model)")
    entries = payload["heads"]
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("num_classes"), int) and e["num_classes"] > 0
            and isinstance(e.get("state_dict"), dict) for e in entries):
        raise CheckpointError(path, "its classifier heads are not a list of {'num_classes', 'state_dict'} entries")
    heads = []
    for number, entry in enumerate(entries):
        try:
            heads.append(_holding(lambda: ClassifierHead(feature_dim, entry["num_classes"]), entry["state_dict"]))
        except RuntimeError as error:
            raise CheckpointError(path, f"classifier head {number} cannot be loaded ({one_line_reason(error)})") from None
    return heads
