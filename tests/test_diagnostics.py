from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from iics.diagnostics import per_camera_label_quality, pseudo_label_quality


def test_hand_worked_pairwise():
    # Predicted clusters: A = {0, 1, 2}, B = {3, 4}, C = {5}.
    # True identities:    x = {0, 1, 3},  y = {2, 4, 5}.
    pred = [0, 0, 0, 1, 1, 2]
    true = ["x", "x", "y", "x", "y", "y"]
    # Same-cluster pairs: A has 3, B has 1 -> 4. Of those, same identity: (0, 1) only -> 1.
    # Same-identity pairs: x has 3, y has 3 -> 6.
    out = pseudo_label_quality(pred, true)
    assert out["pairwise_precision"] == pytest.approx(1 / 4)
    assert out["pairwise_recall"] == pytest.approx(1 / 6)
    assert out["num_clusters"] == 3
    assert out["num_singletons"] == 1


def test_perfect_clustering_gives_ones():
    true = [3, 3, 1, 1, 1, 7]
    pred = [10, 10, 0, 0, 0, 5]  # same partition, different ids
    out = pseudo_label_quality(pred, true)
    for key in ("nmi", "ari", "pairwise_precision", "pairwise_recall"):
        assert out[key] == pytest.approx(1.0)


def test_zero_over_zero_is_one():
    # All singletons: no same-cluster pairs (precision 0/0 = 1) and all distinct
    # identities (recall 0/0 = 1).
    out = pseudo_label_quality([0, 1, 2], [5, 6, 7])
    assert out["pairwise_precision"] == 1.0 and out["pairwise_recall"] == 1.0
    assert out["num_singletons"] == 3


def test_matches_sklearn_and_bruteforce_pairs():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 8, 60)
    pred = rng.integers(0, 10, 60)
    out = pseudo_label_quality(torch.tensor(pred), true)
    assert out["nmi"] == pytest.approx(normalized_mutual_info_score(true, pred))
    assert out["ari"] == pytest.approx(adjusted_rand_score(true, pred))
    i, j = np.triu_indices(60, 1)
    same_p, same_t = pred[i] == pred[j], true[i] == true[j]
    assert out["pairwise_precision"] == pytest.approx((same_p & same_t).sum() / same_p.sum())
    assert out["pairwise_recall"] == pytest.approx((same_p & same_t).sum() / same_t.sum())


def test_plain_python_types():
    out = pseudo_label_quality(np.array([0, 0, 1]), np.array([1, 1, 2]))
    assert set(out) == {"nmi", "ari", "pairwise_precision", "pairwise_recall", "num_clusters", "num_singletons"}
    assert all(type(v) in (int, float) for v in out.values())
    json.dumps(out)


def test_errors():
    # matched to the message: NumPy's own broadcast ValueError would pass a bare pytest.raises
    with pytest.raises(ValueError, match=r"^pred_labels \(2\) and true_labels \(3\) differ in length$"):
        pseudo_label_quality([0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match=r"^pred_labels must not be empty$"):
        pseudo_label_quality([], [])


@pytest.mark.parametrize("seed", range(6))
def test_nmi_and_ari_match_sklearn_on_random_and_edge_labellings(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    true = rng.integers(0, int(rng.integers(1, 40)), n)
    cases = [
        rng.integers(0, int(rng.integers(1, 60)), n),  # unrelated
        np.where(rng.random(n) < 0.8, true, rng.integers(0, 5, n)),  # mostly right
        true * 2 + rng.integers(0, 2, n),  # every identity split in two
        np.zeros(n, dtype=int),  # one cluster
        np.arange(n),  # all singletons
    ]
    for pred in cases:
        out = pseudo_label_quality(pred, true)
        assert out["nmi"] == pytest.approx(normalized_mutual_info_score(true, pred), abs=1e-10)
        assert out["ari"] == pytest.approx(adjusted_rand_score(true, pred), abs=1e-10)


def test_single_cluster_against_single_identity():
    out = pseudo_label_quality([4, 4, 4], [1, 1, 1])
    assert out["nmi"] == normalized_mutual_info_score([1, 1, 1], [4, 4, 4]) == 1.0
    assert out["ari"] == adjusted_rand_score([1, 1, 1], [4, 4, 4]) == 1.0


def test_per_camera_quality_never_pairs_images_of_two_cameras():
    # camera 0: one person (7) in clusters {a, b} + {c}; camera 1: 7 alone, 8 twice together.
    # Same-cluster pairs: (a, b) and the two 8s, both right -> precision 1. Same-identity pairs
    # within a camera: 3 in camera 0, 1 in camera 1 -> recall 2 / 4. Person 7 is in both cameras,
    # but a pair across cameras is never counted.
    out = per_camera_label_quality(pred_labels=[0, 0, 1, 0, 1, 1], true_labels=[7, 7, 7, 7, 8, 8],
                                   camera_index=[0, 0, 0, 1, 1, 1])
    assert out["pairwise_precision"] == 1.0
    assert out["pairwise_recall"] == 0.5
    assert out["num_clusters"] == 4 and out["num_singletons"] == 2
    # Any integers: the same partitions score the same with negative labels too (an offset
    # camera * (max + 1) + label would put camera 1's -1 into camera 0's identity 8).
    assert per_camera_label_quality([0, 0, 1, 0, 1, 1], [8, 8, 8, -1, 3, 3], [0, 0, 0, 1, 1, 1]) == out
    with pytest.raises(ValueError, match="camera_index"):
        per_camera_label_quality([0, 1], [0, 1], [0])
