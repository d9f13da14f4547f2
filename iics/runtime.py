"""Device choice and seeding."""
from __future__ import annotations

import random

import numpy as np
import torch


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; `cpu`, `cuda`, `cuda:1` ... as given.

    Asking for CUDA on a machine without it is an error, never a silent fallback.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return device


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
