"""Batched image preprocessing and training augmentation on tensors.

Images travel as uint8 tensors (N, H, W, 3) straight from the image cache; everything here runs
on whatever device they are on, for a whole batch at once (no per-image Python work).
"""
from __future__ import annotations

import functools

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The reference fills erased rectangles with these constants in the normalised space.
ERASE_FILL = (0.4914, 0.4822, 0.4465)


@functools.lru_cache(maxsize=None)
def _channel_constant(values: tuple[float, float, float], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A (1, 3, 1, 1) tensor of per-channel constants, made once per device: building it on every
    batch would be a blocking host-to-GPU copy, which stalls the CPU until the GPU catches up."""
    return torch.tensor(values, dtype=dtype).view(1, 3, 1, 1).to(device)


def to_chw(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) -> (N, 3, H, W), same dtype."""
    return images.permute(0, 3, 1, 2)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float (N, 3, H, W) scaled to [0, 1] and ImageNet-normalised."""
    mean = _channel_constant(IMAGENET_MEAN, x.device, torch.float32)
    std = _channel_constant(IMAGENET_STD, x.device, torch.float32)
    return (x.float() / 255.0 - mean) / std


@functools.lru_cache(maxsize=None)
def _positions(size: int, device: torch.device) -> torch.Tensor:
    """0 .. size - 1 (int64) on `device`, made once per size and device."""
    return torch.arange(size, device=device)


def random_flip_pad_crop(x: torch.Tensor, generator: torch.Generator, flip_p: float = 0.5, pad: int = 0) -> torch.Tensor:
    """Mirror each image of (N, C, H, W) left-right with probability `flip_p`, zero-pad every
    side by `pad` pixels and crop back at a random offset (no offset draws when `pad` is 0).

    One gather: a mirrored image's crop reads the padded original's columns right to left
    (column k of the crop at offset `left` is the padded column w - 1 + 2 pad - left - k), so
    the result equals flipping, padding and cropping in turn without the flipped copy.
    """
    if pad < 0:
        raise ValueError(f"pad must be >= 0 pixels, got {pad}")
    n, c, h, w = x.shape
    flip = (torch.rand(n, generator=generator, device=generator.device) < flip_p).to(x.device)
    if pad > 0:
        x = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=generator.device)
        top, left = offsets.to(x.device)
        rows = (top[:, None] + _positions(h, x.device)).view(n, 1, h, 1)
    else:
        left = torch.zeros(n, dtype=torch.long, device=x.device)
        rows = _positions(h, x.device).view(1, 1, h, 1)
    across = _positions(w, x.device)
    cols = torch.where(flip[:, None], (w - 1 + 2 * pad - left)[:, None] - across, left[:, None] + across)
    return x[_positions(n, x.device).view(n, 1, 1, 1), _positions(c, x.device).view(1, c, 1, 1), rows,
             cols.view(n, 1, 1, w)]


def random_erasing(
    x: torch.Tensor,
    generator: torch.Generator,
    p: float = 0.5,
    area: tuple[float, float] = (0.02, 0.4),
    min_aspect: float = 0.3,
    attempts: int = 10,
) -> torch.Tensor:
    """Fill one random rectangle per image (with probability p) with ERASE_FILL.

    Rectangle area is uniform in `area` x H x W and aspect ratio h/w uniform in
    [min_aspect, 1/min_aspect]; like the reference, a draw that does not fit is retried (here:
    `attempts` draws at once, the first that fits is used; an image with none that fits is kept).
    """
    n, c, h, w = x.shape
    dev = generator.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, attempts, generator=generator, device=dev)

    target_area = uniform(*area) * (h * w)
    aspect = uniform(min_aspect, 1.0 / min_aspect)
    eh = torch.sqrt(target_area * aspect).round().long()
    ew = torch.sqrt(target_area / aspect).round().long()
    fits = (eh < h) & (ew < w) & (eh > 0) & (ew > 0)
    first = torch.argmax(fits.int(), dim=1)
    chosen = _positions(n, dev)
    eh, ew, fits = eh[chosen, first], ew[chosen, first], fits[chosen, first]
    apply = fits & (torch.rand(n, generator=generator, device=dev) < p)
    top = (torch.rand(n, generator=generator, device=dev) * (h - eh + 1).clamp(min=1)).long()
    left = (torch.rand(n, generator=generator, device=dev) * (w - ew + 1).clamp(min=1)).long()

    top, left, eh, ew, apply = (t.to(x.device) for t in (top, left, eh, ew, apply))
    ys = _positions(h, x.device).view(1, h, 1)
    xs = _positions(w, x.device).view(1, 1, w)
    inside = (
        (ys >= top.view(n, 1, 1)) & (ys < (top + eh).view(n, 1, 1))
        & (xs >= left.view(n, 1, 1)) & (xs < (left + ew).view(n, 1, 1))
        & apply.view(n, 1, 1)
    )
    fill = _channel_constant(ERASE_FILL, x.device, x.dtype)
    return torch.where(inside.unsqueeze(1), fill, x)


def train_transform(
    images: torch.Tensor,
    generator: torch.Generator,
    pad: int = 10,
    flip_p: float = 0.5,
    erasing_p: float = 0.5,
) -> torch.Tensor:
    """The reference's training augmentation, batched: uint8 (N, H, W, 3) -> normalised float
    (N, 3, H, W) after random flip, zero-pad-and-crop, normalisation and random erasing."""
    x = random_flip_pad_crop(to_chw(images), generator, flip_p, pad)
    x = normalize(x)
    return random_erasing(x, generator, erasing_p) if erasing_p > 0 else x


def eval_transform(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalised float (N, 3, H, W), no augmentation."""
    return normalize(to_chw(images))
