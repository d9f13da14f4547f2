"""Agglomerative clustering of a precomputed distance matrix, cut by count or threshold."""

from __future__ import annotations

import numpy as np
import torch
from scipy.cluster.hierarchy import linkage as _scipy_linkage

_LINKAGES = ("average", "complete", "single")


def _square(dist) -> np.ndarray:
    """The matrix as a NumPy array in its own floating dtype: at MSMT17 scale (32,621 images) a
    float64 copy of a float32 matrix would be another 8.5 GB; only the condensed half is float64."""
    if isinstance(dist, torch.Tensor):
        dist = dist.detach().cpu().numpy()
    d = np.asarray(dist)
    if not np.issubdtype(d.dtype, np.floating):
        d = d.astype(np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"dist must be a square 2-D matrix, got shape {d.shape}")
    if d.shape[0] == 0:
        raise ValueError("dist must not be empty")
    return d


def _upper_triangle(d: np.ndarray) -> np.ndarray:
    """``d[i, j]`` for ``i < j`` in row-major order (scipy's condensed layout), as float64."""
    n = d.shape[0]
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    pos = 0
    for i in range(n - 1):
        m = n - 1 - i
        out[pos : pos + m] = d[i, i + 1 :]
        pos += m
    return out


def _relabel(roots: np.ndarray) -> np.ndarray:
    """Map arbitrary ids to 0..K-1 in order of first appearance."""
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    new = np.empty(len(first), dtype=np.int64)
    new[np.argsort(first, kind="stable")] = np.arange(len(first), dtype=np.int64)
    return new[inverse.reshape(-1)]


def _cut(Z: np.ndarray, n: int, apply: np.ndarray) -> np.ndarray:
    """Union-find over the leaves, applying merge ``r`` of ``Z`` where ``apply[r]``."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    rep = list(range(n)) + [0] * (n - 1)  # a leaf inside each tree node
    left = Z[:, 0].astype(np.int64).tolist()
    right = Z[:, 1].astype(np.int64).tolist()
    for r, do in enumerate(apply.tolist()):
        ra, rb = find(rep[left[r]]), find(rep[right[r]])
        rep[n + r] = ra
        if do and ra != rb:
            parent[rb] = ra
    return _relabel(np.array([find(i) for i in range(n)], dtype=np.int64))


def agglomerative(
    dist, n_clusters=None, threshold=None, quantile=None, linkage: str = "average"
) -> np.ndarray:
    """Cluster a precomputed ``n x n`` distance matrix; return int64 labels 0..K-1.

    Only the upper triangle (``dist[i, j]``, ``i < j``) is read, as scikit-learn's
    precomputed agglomerative clustering does, so a slightly asymmetric (re-ranked)
    matrix is accepted. Give exactly one cut: ``n_clusters`` (apply the first
    ``n - n_clusters`` merges), ``threshold`` (apply every merge with height
    ``< threshold``, scikit-learn's ``distance_threshold``) or ``quantile`` (the
    threshold is ``quantile_threshold(dist, quantile)``, found in the condensed copy
    the linkage reads instead of a second one). Labels are numbered in order of first
    appearance.
    """
    if sum(cut is not None for cut in (n_clusters, threshold, quantile)) != 1:
        raise ValueError("give exactly one of n_clusters, threshold or quantile")
    if linkage not in _LINKAGES:
        raise ValueError(f"linkage must be one of {_LINKAGES}, got {linkage!r}")
    d = _square(dist)
    n = d.shape[0]
    if n_clusters is not None:
        n_clusters = int(n_clusters)
        if not 1 <= n_clusters <= n:
            raise ValueError(f"n_clusters must be in [1, {n}], got {n_clusters}")
    elif threshold is not None:
        threshold = float(threshold)
        if np.isnan(threshold):
            raise ValueError("threshold must not be NaN")
    else:
        quantile = _checked_quantile(quantile)
    y = _upper_triangle(d)
    if not np.isfinite(y).all():
        raise ValueError("dist must contain only finite values above the diagonal")
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    if quantile is not None:
        threshold = _condensed_quantile(y, quantile)
    Z = _scipy_linkage(y, method=linkage)
    if n_clusters is not None:
        apply = np.arange(n - 1) < n - n_clusters
    else:
        apply = Z[:, 2] < threshold
    return _cut(Z, n, apply)


def quantile_threshold(dist, q: float) -> float:
    """Value at position ``round(q * m)`` (clamped) of the sorted non-zero ``dist[i, j]``, ``i < j``."""
    return _condensed_quantile(_upper_triangle(_square(dist)), _checked_quantile(q))


def _checked_quantile(q) -> float:
    q = float(q)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    return q


def _condensed_quantile(y: np.ndarray, q: float) -> float:
    """Value at position ``round(q * m)`` (clamped) of the sorted non-zero entries of ``y``."""
    nonzero = y[y != 0]
    m = len(nonzero)
    if m == 0:
        raise ValueError("dist has no non-zero entries above the diagonal")
    k = min(max(int(np.round(q * m)), 0), m - 1)
    nonzero.partition(k)  # in place: np.partition would make another copy of m values
    return float(nonzero[k])


def count_for_camera(n_images: int, n_clusters: int) -> int:
    """Cluster count for one camera: ``n_clusters`` if ``n_images > n_clusters``, else ``max(1, n_images // 2)``."""
    n_images, n_clusters = int(n_images), int(n_clusters)
    return n_clusters if n_images > n_clusters else max(1, n_images // 2)
