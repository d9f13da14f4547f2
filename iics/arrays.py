"""Plain arrays in, tensors inside: the one conversion the numeric modules share."""
from __future__ import annotations

import numpy as np
import torch


def as_tensor(x) -> torch.Tensor:
    """A tensor of `x` (tensor, NumPy array or nested list) on its own device and in its own dtype.

    A tensor is detached; a writable, C-ordered array is shared without a copy; any other array
    (read-only, such as one loaded with `mmap_mode="r"`, reversed or strided) is copied first, so
    no caller ever holds a tensor over memory it must not write.
    """
    if isinstance(x, torch.Tensor):
        return x.detach()
    array = np.ascontiguousarray(x)
    return torch.from_numpy(array if array.flags.writeable else array.copy())
