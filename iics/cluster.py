"""Average-linkage agglomerative clustering of a precomputed distance matrix, cut by count,
threshold or quantile.

Where the matrix is a CUDA tensor the tree is built on the GPU by merging reciprocal-nearest
pairs in parallel (`iics.reciprocal_linkage`); anywhere else by scipy's nearest-neighbour chain
on the host, which is the faster of the two on a CPU. Both build the same tree up to exact ties in
the distances (with exact ties the trees may differ), so the labels agree (tests compare them on
random matrices).
"""

from __future__ import annotations

import numpy as np
import torch

from iics.reciprocal_linkage import average_linkage_merges


def agglomerative(dist, n_clusters=None, threshold=None, quantile=None) -> np.ndarray:
    """Cluster a precomputed ``n x n`` distance matrix; return int64 labels 0..K-1.

    Only the upper triangle (``dist[i, j]``, ``i < j``) is read, as scikit-learn's
    precomputed agglomerative clustering does, so a slightly asymmetric (re-ranked)
    matrix is accepted. Give exactly one cut: ``n_clusters`` (apply the first
    ``n - n_clusters`` merges), ``threshold`` (apply every merge with height
    ``< threshold``, scikit-learn's ``distance_threshold``) or ``quantile`` (the
    threshold is ``quantile_threshold(dist, quantile)``). Labels are numbered in order of
    first appearance. A CUDA tensor is clustered on its GPU, anything else on the host.
    """
    if sum(cut is not None for cut in (n_clusters, threshold, quantile)) != 1:
        raise ValueError("give exactly one of n_clusters, threshold or quantile")
    on_device = isinstance(dist, torch.Tensor) and dist.is_cuda
    if on_device:
        dist = dist.detach()
        _check_shape(dist.shape)
    else:
        dist = _square(dist)
    n = dist.shape[0]
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
    if on_device:
        return _cut_on_device(dist, n_clusters, threshold, quantile)
    return _cut_on_host(dist, n_clusters, threshold, quantile)


def quantile_threshold(dist, q: float) -> float:
    """Value at position ``round(q * m)`` (clamped) of the sorted non-zero ``dist[i, j]``, ``i < j``."""
    return _condensed_quantile(_upper_triangle(_square(dist)), _checked_quantile(q))


def capped_cluster_count(n_images: int, n_clusters: int) -> int:
    """The count cut for a set of ``n_images`` (one camera's images, or all of them for the
    inter-camera cut) asked for ``n_clusters``: ``n_clusters`` if ``n_images > n_clusters``, else
    ``max(1, n_images // 2)``.

    Deliberately different from the reference (ALGORITHM.md), which halves only when
    ``n_images < n_clusters``: with ``n_images == n_clusters`` its rule keeps ``n_clusters``, so every
    image would be its own cluster and the set would give no pseudo-label signal.
    """
    n_images, n_clusters = int(n_images), int(n_clusters)
    return n_clusters if n_images > n_clusters else max(1, n_images // 2)


def _cut_on_host(d: np.ndarray, n_clusters, threshold, quantile) -> np.ndarray:
    n = d.shape[0]
    y = _upper_triangle(d)
    if not np.isfinite(y).all():
        raise ValueError("dist must contain only finite values above the diagonal")
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    if quantile is not None:
        threshold = _condensed_quantile(y, quantile)
    from scipy.cluster.hierarchy import linkage  # imported here: 0.4 s that a GPU run does not need

    Z = linkage(y, method="average")  # merges sorted by height
    a, b = _leaf_pairs(Z, n)
    applied = np.arange(n - 1) < n - n_clusters if n_clusters is not None else Z[:, 2] < threshold
    return _labels_from_merges(a[applied], b[applied], n)


def _cut_on_device(d: torch.Tensor, n_clusters, threshold, quantile) -> np.ndarray:
    n = d.shape[0]
    if (~torch.isfinite(d)).triu_(diagonal=1).any():
        raise ValueError("dist must contain only finite values above the diagonal")
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    if quantile is not None:
        threshold = _device_quantile(d, quantile)
    if n_clusters is not None:
        a, b, height = average_linkage_merges(d)
        applied = torch.sort(height, stable=True).indices[: n - n_clusters]
        a, b = a[applied], b[applied]
    else:
        a, b, _ = average_linkage_merges(d, below=threshold)
    return _labels_from_merges(a.cpu().numpy(), b.cpu().numpy(), n)


# Matrix entries read at once when the quantile of a matrix on a torch device is found; tests lower it.
QUANTILE_CHUNK_ELEMENTS = 1 << 24


def _device_quantile(d: torch.Tensor, q: float) -> float:
    """``quantile_threshold`` of a matrix on a torch device: the same value, found on the device.

    At MSMT17 scale (32,621 images) there are m = 532 million upper-triangle entries. Boolean
    indexing of the whole matrix would build an m x 2 int64 index (8.5 GB), so the non-zero
    upper-triangle values are copied a row chunk at a time into one buffer (2.1 GB float32) and
    sorted. The sort also returns m int64 indices (4.3 GB), which an 80 GB GPU holds;
    ``torch.kthvalue`` would not need them, but on one long CUDA vector it is about 20x slower
    than a sort (pytorch/pytorch#75599). Sorting in the matrix's own dtype orders the same values.
    """
    values = _nonzero_upper_triangle(d)
    return float(torch.sort(values).values[_quantile_position(q, len(values))])


def _nonzero_upper_triangle(d: torch.Tensor) -> torch.Tensor:
    """The non-zero ``d[i, j]``, ``i < j``, in row-major order, as a 1-D tensor in ``d``'s dtype."""
    n = d.shape[0]
    out = torch.empty(n * (n - 1) // 2, dtype=d.dtype, device=d.device)
    cols = torch.arange(n, device=d.device)
    step = max(1, QUANTILE_CHUNK_ELEMENTS // n)
    m = 0
    for s in range(0, n - 1, step):  # the last row has nothing above the diagonal
        e = min(n - 1, s + step)
        block = d[s:e]
        kept = block[(cols[None, :] > cols[s:e, None]) & (block != 0)]  # int64 indices of one chunk only
        out[m : m + len(kept)] = kept
        m += len(kept)
    return out[:m]


def _check_shape(shape) -> None:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"dist must be a square 2-D matrix, got shape {tuple(shape)}")
    if shape[0] == 0:
        raise ValueError("dist must not be empty")


def _square(dist) -> np.ndarray:
    """The matrix as a NumPy array in its own floating dtype: at MSMT17 scale (32,621 images) a
    float64 copy of a float32 matrix would be another 8.5 GB; only the condensed half is float64."""
    if isinstance(dist, torch.Tensor):
        dist = dist.detach().cpu().numpy()
    d = np.asarray(dist)
    if not np.issubdtype(d.dtype, np.floating):
        d = d.astype(np.float64)
    _check_shape(d.shape)
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


def _checked_quantile(q) -> float:
    q = float(q)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    return q


def _quantile_position(q: float, m: int) -> int:
    if m == 0:
        raise ValueError("every distance is 0 (identical features?), so the quantile cut has no non-zero "
                         "distance to take a quantile of")
    return min(max(int(np.round(q * m)), 0), m - 1)


def _condensed_quantile(y: np.ndarray, q: float) -> float:
    """Value at position ``round(q * m)`` (clamped) of the sorted non-zero entries of ``y``."""
    nonzero = y[y != 0]
    k = _quantile_position(q, len(nonzero))
    nonzero.partition(k)  # in place: np.partition would make another copy of m values
    return float(nonzero[k])


def _leaf_pairs(Z: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For each merge of a scipy linkage matrix, one leaf inside each of the two clusters it joins."""
    leaf = np.concatenate([np.arange(n), np.empty(n - 1, dtype=np.int64)])
    left = Z[:, 0].astype(np.int64)
    right = Z[:, 1].astype(np.int64)
    for r in range(n - 1):  # a node's leaf is its left child's, which is always an earlier node
        leaf[n + r] = leaf[left[r]]
    return leaf[left], leaf[right]


def _labels_from_merges(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Connected components of the leaves joined by the applied merges, numbered in order of first
    appearance. A plain union-find: at most n - 1 merges, tens of milliseconds at 32,621 leaves,
    where scipy.sparse.csgraph would cost 0.35 s of import in every clustering stage."""
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for x, y in zip(np.asarray(a).tolist(), np.asarray(b).tolist()):
        rx, ry = root(x), root(y)
        if rx != ry:
            parent[ry] = rx
    components = np.array([root(i) for i in range(n)], dtype=np.int64)
    _, first, inverse = np.unique(components, return_index=True, return_inverse=True)
    order = np.empty(len(first), dtype=np.int64)
    order[np.argsort(first, kind="stable")] = np.arange(len(first), dtype=np.int64)
    return order[inverse.reshape(-1)]
