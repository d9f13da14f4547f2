"""Quality of pseudo labels against ground-truth identities."""

from __future__ import annotations

import numpy as np
import torch


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


def _entropy(counts: np.ndarray, n: int) -> float:
    p = counts / n
    return float(-(p * np.log(p)).sum())


def _nmi(cell_counts, row_of_cell, col_of_cell, p_counts, t_counts, n) -> float:
    """Mutual information over the arithmetic mean of the two entropies (scikit-learn's default),
    from the non-empty cells of the contingency table; 1.0 when neither labelling splits the data."""
    if len(p_counts) == len(t_counts) == 1:
        return 1.0
    expected = p_counts[row_of_cell].astype(np.float64) * t_counts[col_of_cell]
    mi = float((cell_counts / n * (np.log(cell_counts * float(n)) - np.log(expected))).sum())
    if mi <= 0.0:
        return 0.0
    return mi / ((_entropy(p_counts, n) + _entropy(t_counts, n)) / 2)


def _ari(both: int, pred_pairs: int, true_pairs: int, n: int) -> float:
    """Adjusted Rand index from pair counts; 1.0 when the two labellings pair up nothing differently."""
    if both == pred_pairs == true_pairs:
        return 1.0
    total = n * (n - 1) // 2
    expected = pred_pairs * true_pairs / total
    return (both - expected) / ((pred_pairs + true_pairs) / 2 - expected)


def pseudo_label_quality(pred_labels, true_labels) -> dict:
    """Return ``nmi``, ``ari``, ``pairwise_precision``, ``pairwise_recall``, ``num_clusters``, ``num_singletons``.

    Pairwise scores are over unordered pairs of samples, from the contingency table
    (no pair enumeration): precision = same-cluster pairs sharing the true label /
    same-cluster pairs; recall = that count / same-label pairs. 0/0 is defined as 1.0.
    NMI (arithmetic-mean normalisation) and ARI are computed from the same table and agree with
    scikit-learn's (tests compare them); importing scikit-learn here would cost every clustering
    stage a second of start-up. Values are plain Python types.
    """
    pred = _labels(pred_labels, "pred_labels")
    true = _labels(true_labels, "true_labels")
    if pred.shape != true.shape:
        raise ValueError(f"pred_labels ({pred.size}) and true_labels ({true.size}) differ in length")
    _, p_idx, p_counts = np.unique(pred, return_inverse=True, return_counts=True)
    _, t_idx, t_counts = np.unique(true, return_inverse=True, return_counts=True)
    p_idx, t_idx = p_idx.reshape(-1), t_idx.reshape(-1)
    cells, cell_counts = np.unique(p_idx.astype(np.int64) * len(t_counts) + t_idx, return_counts=True)
    both = _pairs(cell_counts)
    pred_pairs = _pairs(p_counts)
    true_pairs = _pairs(t_counts)
    n = len(pred)
    return {
        "nmi": _nmi(cell_counts, cells // len(t_counts), cells % len(t_counts), p_counts, t_counts, n),
        "ari": float(_ari(both, pred_pairs, true_pairs, n)),
        "pairwise_precision": both / pred_pairs if pred_pairs else 1.0,
        "pairwise_recall": both / true_pairs if true_pairs else 1.0,
        "num_clusters": int(len(p_counts)),
        "num_singletons": int((p_counts == 1).sum()),
    }


def per_camera_label_quality(pred_labels, true_labels, camera_index) -> dict:
    """:func:`pseudo_label_quality` of per-camera labels (numbered from 0 within each camera),
    scored as one labelling in which no cluster and no identity spans two cameras: the quality
    of intra-camera clustering, which never sees cross-camera pairs."""
    pred = _labels(pred_labels, "pred_labels")
    true = _labels(true_labels, "true_labels")
    camera = _labels(camera_index, "camera_index")
    if not pred.shape == true.shape == camera.shape:
        raise ValueError(f"pred_labels ({pred.size}), true_labels ({true.size}) and camera_index ({camera.size}) "
                         "differ in length")

    def within_camera(labels: np.ndarray) -> np.ndarray:  # one label per (camera, label) pair
        return np.unique(np.stack([camera, labels], axis=1), axis=0, return_inverse=True)[1].reshape(-1)

    return pseudo_label_quality(within_camera(pred), within_camera(true))
