"""Batch-hard triplet loss."""
from __future__ import annotations

import torch


def batch_hard_triplet(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Mean over anchors of max(0, hardest positive - hardest negative + margin).

    Distances are Euclidean between the rows of `features`. Anchors without a positive (other
    than themselves) or without a negative use 0 for the missing term's distance / are skipped.
    """
    features = features.float()
    dist = torch.cdist(features, features).clamp(min=1e-12)
    same = labels.view(-1, 1) == labels.view(1, -1)
    hardest_positive = torch.where(same, dist, torch.zeros_like(dist)).max(dim=1).values
    hardest_negative = torch.where(same, torch.full_like(dist, float("inf")), dist).min(dim=1).values
    # Anchors without a negative have hardest_negative = inf, so relu(...) = 0 for them; they are
    # left out of the mean by count. No data-dependent branch: the loss never waits for the GPU.
    valid = torch.isfinite(hardest_negative)
    per_anchor = torch.relu(hardest_positive - hardest_negative + margin)
    return per_anchor.sum() / valid.sum().clamp(min=1)
