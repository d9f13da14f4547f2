"""Flip-averaged features of a backbone over the uint8 image cache."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from iics.arrays import as_tensor
from iics.augment import eval_transform
from iics.runtime import compute_context, place_batch, place_model
from iics.settings import check_count


def cache_batches(
    images: np.ndarray,
    batch_size: int,
    rows: np.ndarray | None = None,
    progress: bool = True,
    desc: str = "images",
    caller: str = "cache_batches",
) -> Iterator[torch.Tensor]:
    """The uint8 cache `images` (N, H, W, 3) as CPU uint8 tensors of at most `batch_size` images,
    read one batch at a time (from a memory-mapped cache only that batch is read): all images in
    order, or with `rows` (integer indices) those images in that order. Checked at once: a
    ValueError naming `caller` when there are no images."""
    check_count("batch_size", batch_size)
    count = len(images) if rows is None else len(rows)
    if count == 0:
        raise ValueError(f"{caller}: no images")

    def read(start: int) -> torch.Tensor:
        chunk = images[start:start + batch_size] if rows is None else images[rows[start:start + batch_size]]
        return as_tensor(chunk)  # a slice of a read-only memory map is copied, a row selection is not

    starts = tqdm(range(0, count, batch_size), desc=desc, disable=not progress, leave=False)
    return (read(start) for start in starts)


def non_finite_rows(rows: torch.Tensor) -> int:
    """How many rows of a 2-D tensor hold at least one NaN or infinite value."""
    return int((~torch.isfinite(rows)).any(dim=1).sum())


class NonFiniteFeatures(ValueError):
    """A model gave NaN or infinite features: its weights or batch-norm statistics are broken."""


@torch.no_grad()
def extract_features(
    model: nn.Module,
    images: np.ndarray,
    device: torch.device,
    batch_size: int = 256,
    progress: bool = True,
    desc: str = "features",
    bf16: bool = False,
    rows: np.ndarray | None = None,
) -> torch.Tensor:
    """Average of the model's features for each image and its mirror image, shape (N, D), float32
    on CPU.

    `images` is the uint8 cache (N, H, W, 3), a NumPy array or the memory-mapped cache file.
    With `rows` (integer indices into it) only those images are read, in that order, one batch
    at a time: the features equal those of `images[rows]` without that copy in host memory (at
    MSMT17's gallery size several GiB). The features are NOT normalised: the classifier heads
    take them as they are; use `l2_normalize` for distances. `bf16` runs the model under
    bfloat16 autocast in channels_last layout (see iics.runtime). Raises NonFiniteFeatures when
    any image's features are NaN or infinite, so that no later step clusters or scores them.
    """
    batches = cache_batches(images, batch_size, rows, progress, desc, caller="extract_features")
    place_model(model.eval(), device, bf16)
    out = []
    for batch in batches:
        if device.type == "cuda":  # from pinned memory the copy runs behind the previous batch's forward
            batch = batch.pin_memory().to(device, non_blocking=True)
        x = place_batch(eval_transform(batch), bf16)
        with compute_context(device, bf16):
            feats = (model(x).float() + model(x.flip(-1)).float()) / 2
        out.append(feats)  # kept on the device: one copy back at the end, no wait per batch
    features = torch.cat(out)
    broken = non_finite_rows(features)
    if broken:
        raise NonFiniteFeatures(f"{broken} of {len(features)} images give NaN or infinite features: the model's "
                                "weights or batch-norm statistics are broken")
    return features.cpu()


def l2_normalize(features: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length."""
    return torch.nn.functional.normalize(features, dim=1)


def cosine_distance(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """1 - cosine similarity between the rows of a and b (b = a when omitted)."""
    a = l2_normalize(a)
    b = a if b is None else l2_normalize(b)
    # In place: at MSMT17's size (11,659 x 82,161) each matrix is 3.8 GB, and `1.0 - a @ b.T`
    # would hold two. -s + 1 rounds exactly as 1 - s does, so the values are the same bits.
    return (a @ b.T).neg_().add_(1.0).clamp_(min=0.0)


@torch.no_grad()
def camera_head_probabilities(features: torch.Tensor, heads: list[nn.Module], device: torch.device) -> torch.Tensor:
    """Concatenated softmax outputs of all camera heads for each (un-normalised) feature row,
    float32 on `device` (where the inter-camera affinity that reads them runs)."""
    probs = []
    x = features.to(device)
    for head in heads:
        head.eval().to(device)
        probs.append(torch.softmax(head(x).float(), dim=1))
    return torch.cat(probs, dim=1)
