"""Quality of pseudo labels against ground-truth identities."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def _labels(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x).reshape(-1)
    if a.size == 0:
        raise ValueError(f"{name} must not be empty")
    return a


def _pairs(counts: np.ndarray) -> int:
    c = counts.astype(np.int64)
    return int((c * (c - 1) // 2).sum())


def pseudo_label_quality(pred_labels, true_labels) -> dict:
    """Return ``nmi``, ``ari``, ``pairwise_precision``, ``pairwise_recall``, ``num_clusters``, ``num_singletons``.

    Pairwise scores are over unordered pairs of samples, from the contingency table
    (no pair enumeration): precision = same-cluster pairs sharing the true label /
    same-cluster pairs; recall = that count / same-label pairs. 0/0 is defined as 1.0.
    NMI and ARI are scikit-learn's (arithmetic-mean NMI). Values are plain Python types.
    """
    pred = _labels(pred_labels, "pred_labels")
    true = _labels(true_labels, "true_labels")
    if pred.shape != true.shape:
        raise ValueError(f"pred_labels ({pred.size}) and true_labels ({true.size}) differ in length")
    _, p_idx, p_counts = np.unique(pred, return_inverse=True, return_counts=True)
    _, t_idx, t_counts = np.unique(true, return_inverse=True, return_counts=True)
    p_idx, t_idx = p_idx.reshape(-1), t_idx.reshape(-1)
    _, cell_counts = np.unique(p_idx.astype(np.int64) * len(t_counts) + t_idx, return_counts=True)
    both = _pairs(cell_counts)
    pred_pairs = _pairs(p_counts)
    true_pairs = _pairs(t_counts)
    return {
        "nmi": float(normalized_mutual_info_score(true, pred)),
        "ari": float(adjusted_rand_score(true, pred)),
        "pairwise_precision": both / pred_pairs if pred_pairs else 1.0,
        "pairwise_recall": both / true_pairs if true_pairs else 1.0,
        "num_clusters": int(len(p_counts)),
        "num_singletons": int((p_counts == 1).sum()),
    }
