"""From features to pseudo-labels: re-rank, then cut an average-linkage tree.

The cut is one of three methods:
- `count`: a fixed number of clusters (paper: 600 intra-camera per camera, 800 inter-camera);
  when a set has no more images than that, n // 2 clusters (a documented cap in place of the
  reference's duplication of every image).
- `quantile`: the reference's adaptive variant; the threshold is the q-quantile of the
  non-zero re-ranked pairwise distances (paper: 0.0025 intra, 0.0017 inter).
- `threshold`: an absolute cut on the re-ranked distance; merges below it are applied.
"""
from __future__ import annotations

import numpy as np
import torch

from iics.affinity import inter_camera_distance
from iics.cluster import agglomerative, capped_cluster_count
from iics.features import cosine_distance, non_finite_rows
from iics.rerank import k_reciprocal
from iics.settings import ClusterCut, Reranking, check_one_each


def cluster_distances(dist: torch.Tensor, cut: ClusterCut, rerank: Reranking) -> np.ndarray:
    """Re-rank a square distance matrix and cut its average-linkage tree; returns labels.

    Pass ``dist`` without keeping a reference to it: it is released once re-ranked, so it is not
    held through the linkage (4.3 GB float32 at MSMT17 scale, 32,621 images).
    """
    n = dist.shape[0]
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    reranked = k_reciprocal(dist, rerank.k1, rerank.k2, rerank.lambda_value)  # on dist's device
    del dist
    if cut.method == "count":
        return agglomerative(reranked, n_clusters=capped_cluster_count(n, int(cut.value)))
    if cut.method == "quantile":
        return agglomerative(reranked, quantile=cut.value)
    return agglomerative(reranked, threshold=cut.value)


def intra_camera_labels(
    features: torch.Tensor, cameras: np.ndarray, cut: ClusterCut, rerank: Reranking
) -> np.ndarray:
    """Per camera, cluster that camera's images; labels are local to each camera (0..K_c-1).

    ``cameras`` holds each image's camera (any integers). A camera that cannot be clustered (in
    the quantile cut, all of its images at distance 0) is a ValueError naming it.
    """
    _check_finite("features", features)
    check_one_each("feature rows", len(features), cameras=cameras)
    labels = np.empty(len(cameras), dtype=np.int64)
    for cam in np.unique(cameras):
        members = np.flatnonzero(cameras == cam)
        try:
            labels[members] = cluster_distances(cosine_distance(features[members]), cut, rerank)
        except ValueError as error:
            raise ValueError(f"camera {cam} ({len(members)} images): {error}") from None
    return labels


def inter_camera_labels(
    features: torch.Tensor,
    probabilities: torch.Tensor,
    camera_index: np.ndarray,
    mu_t: float,
    cut: ClusterCut,
    rerank: Reranking,
) -> np.ndarray:
    """Cluster all images on (1 - cosine) - mu_t * Jaccard(classifier outputs) across cameras."""
    _check_finite("features", features)
    _check_finite("classifier probabilities", probabilities)
    check_one_each("feature rows", len(features), probabilities=probabilities,
                   camera_index=camera_index)
    # No local name for the distance matrix: cluster_distances holds the only reference and drops
    # it after re-ranking.
    return cluster_distances(
        torch.as_tensor(inter_camera_distance(features, probabilities, torch.as_tensor(camera_index), mu_t)),
        cut,
        rerank,
    )


def _check_finite(name: str, rows: torch.Tensor) -> None:
    broken = non_finite_rows(rows)
    if broken:
        raise ValueError(f"{name}: {broken} of {len(rows)} rows hold NaN or infinite values")
