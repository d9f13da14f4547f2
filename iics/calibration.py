"""AIBN running statistics estimated from the train images, for backbones whose ImageNet
checkpoint has none (see `iics.models.statistics_from_train_images`)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from iics.augment import eval_transform
from iics.features import cache_batches
from iics.models.aibn import estimate_running_statistics
from iics.runtime import place_model


def estimate_aibn_statistics(
    model: nn.Module,
    images: np.ndarray,
    device: torch.device,
    batch_size: int = 256,
    rows: np.ndarray | None = None,
    progress: bool = True,
) -> int:
    """Estimate ``model``'s AIBN running statistics from the uint8 cache ``images`` (the
    ``rows`` given, else all), read a batch at a time without augmentation, in float32. Returns
    the number of batches; see `iics.models.estimate_running_statistics`."""
    batches = cache_batches(images, batch_size, rows, progress, "AIBN statistics", caller="estimate_aibn_statistics")
    place_model(model, device, bf16=False)
    return estimate_running_statistics(model, (eval_transform(batch.to(device)) for batch in batches))
