"""The two IICS training steps: intra-camera (one head per camera) and inter-camera (one head, PK
batches, cross-entropy + batch-hard triplet)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from iics.augment import train_transform
from iics.losses import batch_hard_triplet
from iics.models.batchnorm import split_batch_statistics
from iics.runtime import compute_context, make_generator, place_batch, place_model
from iics.sampling import per_camera_batches, pk_batches
from iics.settings import Augment, InterTraining, IntraTraining, Optimizer, check_one_each


@dataclass(frozen=True)
class Epoch:
    """What one training epoch did: its mean loss over `steps` SGD steps."""

    loss: float
    steps: int


class TrainingDiverged(ValueError):
    """An epoch's mean loss is NaN or infinite: the weights are lost, nothing is worth saving."""


def _finished(epoch: int, total: torch.Tensor, steps: int) -> Epoch:
    """The epoch's summary; a loss that is no longer a finite number stops training here."""
    loss = float(total) / steps
    if not math.isfinite(loss):
        raise TrainingDiverged(f"the mean loss of epoch {epoch + 1} is {loss}: training diverged; "
                               "lower the learning rate")
    return Epoch(loss, steps)


def _as_device_images(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """The whole uint8 (N, H, W, 3) host array on `device`, where the batches are gathered and
    augmented. A host array only: np.asarray cannot read a CUDA tensor."""
    return torch.as_tensor(np.asarray(images)).to(device)


def train_intra_camera(
    backbone: nn.Module,
    heads: list[nn.Module],
    images: np.ndarray,
    camera_index: np.ndarray,
    labels: np.ndarray,
    *,
    training: IntraTraining,
    optimizer: Optimizer,
    augment: Augment,
    device: torch.device,
    seed: int,
    bf16: bool = False,
    progress: bool = True,
) -> list[Epoch]:
    """Intra-camera training for `training.epochs` epochs; returns each epoch's mean loss and steps
    (TrainingDiverged when one is not finite).

    `camera_index[i]` is the position (0..C-1) of image i's camera in `heads`; `labels[i]` its
    pseudo-label within that camera. Each iteration forwards the C camera batches through the
    backbone as one batch whose batch-normalisation statistics stay per camera (the same result
    as C separate forwards, see iics.models.batchnorm), sums the per-camera cross-entropy losses
    and takes one SGD step. `bf16` runs forward passes under bfloat16 autocast in channels_last
    layout (see iics.runtime); weights, gradients and the optimiser stay float32.
    """
    check_one_each("images", len(images), camera_index=camera_index, labels=labels)
    if len(heads) != int(camera_index.max()) + 1:
        raise ValueError(f"{len(heads)} heads for {int(camera_index.max()) + 1} cameras")
    rng = np.random.default_rng(seed)
    generator = make_generator(seed, device)
    pixels = _as_device_images(images, device)
    targets = torch.as_tensor(labels, dtype=torch.long, device=device)
    place_model(backbone.train(), device, bf16)
    for head in heads:
        head.to(device).train()
    sgd = optimizer.build(backbone, heads)
    epochs = training.epochs
    history = []
    for epoch in range(epochs):
        # The epoch's indices, (iterations, cameras, batch), copied to the device at once: a copy
        # per batch would block the CPU until the GPU finished the previous step.
        iterations = torch.as_tensor(np.array(per_camera_batches(camera_index, training.batch_per_camera, rng)), device=device)
        total = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: no sync per step
        for batch in tqdm(iterations, desc=f"intra epoch {epoch + 1}/{epochs}", disable=not progress, leave=False):
            # All cameras' images augmented at once (each image's draws are its own), in camera order
            x = train_transform(pixels[batch.reshape(-1)], generator, augment.pad, augment.flip_p, augment.erasing_p)
            with compute_context(device, bf16), split_batch_statistics(backbone, len(heads)):
                features = backbone(place_batch(x, bf16)).chunk(len(heads))
                logits = [head(f) for head, f in zip(heads, features)]
            loss = 0.0
            for part, idx_t in zip(logits, batch):
                loss = loss + nn.functional.cross_entropy(part.float(), targets[idx_t])
            sgd.zero_grad(set_to_none=True)
            loss.backward()
            sgd.step()
            total += loss.detach()
        history.append(_finished(epoch, total, len(iterations)))
    return history


def train_inter_camera(
    backbone: nn.Module,
    head: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    training: InterTraining,
    optimizer: Optimizer,
    augment: Augment,
    device: torch.device,
    seed: int,
    bf16: bool = False,
    progress: bool = True,
) -> list[Epoch]:
    """Inter-camera training with PK batches (`training.ids_per_batch` x `training.images_per_id`);
    loss = cross-entropy + batch-hard triplet (`training.margin`) on the pooled backbone features.
    Returns each epoch's mean loss and steps (their number varies: see `pk_batches`). `bf16` as in
    `train_intra_camera`."""
    check_one_each("images", len(images), labels=labels)
    rng = np.random.default_rng(seed)
    generator = make_generator(seed, device)
    pixels = _as_device_images(images, device)
    targets = torch.as_tensor(labels, dtype=torch.long, device=device)
    place_model(backbone.train(), device, bf16)
    head.to(device).train()
    sgd = optimizer.build(backbone, [head])
    epochs = training.epochs
    history = []
    for epoch in range(epochs):
        batches = torch.as_tensor(np.stack(pk_batches(labels, training.ids_per_batch, training.images_per_id, rng)),
                                  device=device)
        total = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: no sync per step
        for idx_t in tqdm(batches, desc=f"inter epoch {epoch + 1}/{epochs}", disable=not progress, leave=False):
            x = train_transform(pixels[idx_t], generator, augment.pad, augment.flip_p, augment.erasing_p)
            with compute_context(device, bf16):
                features = backbone(place_batch(x, bf16))
                logits = head(features)
            y = targets[idx_t]
            loss = nn.functional.cross_entropy(logits.float(), y) + batch_hard_triplet(features.float(), y, training.margin)
            sgd.zero_grad(set_to_none=True)
            loss.backward()
            sgd.step()
            total += loss.detach()
        history.append(_finished(epoch, total, len(batches)))
    return history
