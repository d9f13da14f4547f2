"""Device, numeric precision and seeding."""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; `cpu`, `cuda`, `cuda:1` ... as given.

    Anything else, or a CUDA device this machine does not have, is a ValueError: never a silent
    fallback to another device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device



def free_memory(device: torch.device) -> int | None:
    """Bytes free on `device` now: on CUDA the device's free memory plus what PyTorch's caching
    allocator holds without using (freed tensors it keeps for reuse, which it hands out first),
    on the host MemAvailable (Linux's estimate of what can be allocated without swapping); None
    where the system does not say."""
    if device.type == "cuda":
        # By index: torch before 2.5 refuses torch.device("cuda") (no index, what `auto` gives) in
        # mem_get_info with a ValueError.
        index = torch.cuda.current_device() if device.index is None else device.index
        held = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
        return torch.cuda.mem_get_info(index)[0] + held
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None

PRECISIONS = ("auto", "bf16", "float32")


def resolve_precision(name: str, device: torch.device) -> bool:
    """Whether to compute in bfloat16: `auto` -> on CUDA only; `bf16` -> yes; `float32` -> no."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    return device.type == "cuda" if name == "auto" else name == "bf16"


def compute_context(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """Autocast to bfloat16 on `device` when `bf16`, else nothing.

    Autocast itself keeps only some operations float32. What else is float32 is the code's own
    doing: the backbones pool their last map in float32 (so the features, and the heads'
    BatchNorm1d that reads them, are float32), the callers take losses on `.float()` logits, and
    AIBN2d upcasts its input to compute its statistics. Other outputs are bfloat16.
    """
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def place_model(model: torch.nn.Module, device: torch.device, bf16: bool) -> torch.nn.Module:
    """Move `model` to `device`; with `bf16`, also to channels_last, the layout tensor cores read
    without transposes. Weights stay float32 (autocast casts them per operation)."""
    model.to(device)
    return model.to(memory_format=torch.channels_last) if bf16 else model


def place_batch(x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """An image batch in the layout `place_model` gave the model; float32 batches are left as they are."""
    return x.contiguous(memory_format=torch.channels_last) if bf16 else x


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A torch random generator on `device`, seeded."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
