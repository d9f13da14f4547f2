"""AIBN running statistics estimated from the train images, for backbones whose ImageNet
checkpoint has none (see `iics.models.statistics_from_train_images`)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from iics.augment import eval_transform
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
    count = len(images) if rows is None else len(rows)
    if count == 0:
        raise ValueError("estimate_aibn_statistics: no images")
    place_model(model, device, bf16=False)

    def batches():
        for start in tqdm(range(0, count, batch_size), desc="AIBN statistics", disable=not progress, leave=False):
            chunk = images[start:start + batch_size] if rows is None else images[rows[start:start + batch_size]]
            yield eval_transform(torch.as_tensor(np.asarray(chunk)).to(device))

    return estimate_running_statistics(model, batches())
