"""Intra- and inter-camera pseudo-labels on separable blobs, and the cut settings they take."""
import numpy as np
import pytest
import torch

from iics.cluster import agglomerative
from iics.features import cosine_distance
from iics.pseudo_labels import inter_camera_labels, intra_camera_labels
from iics.rerank import k_reciprocal
from iics.settings import ClusterCut, Reranking


def blobs(num_ids=6, per_id=5, dim=16, noise=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_ids, dim, generator=g)
    features = centres.repeat_interleave(per_id, 0) + noise * torch.randn(num_ids * per_id, dim, generator=g)
    return features, np.repeat(np.arange(num_ids), per_id)


def same_partition(a, b):
    return all((a[i] == a[j]) == (b[i] == b[j]) for i in range(len(a)) for j in range(len(a)))


@pytest.mark.parametrize("cut", [ClusterCut("count", 6), ClusterCut("threshold", 0.2), ClusterCut("quantile", 0.1)])
def test_intra_camera_labels_recover_separated_identities_per_camera(cut):
    features, ids = blobs()
    cameras = np.tile([0, 1], len(ids) // 2)
    labels = intra_camera_labels(features, cameras, cut, Reranking(k1=4, k2=2))
    for cam in (0, 1):
        members = cameras == cam
        if cut.method == "quantile":  # the quantile of each camera's own re-ranked distances
            reranked = k_reciprocal(cosine_distance(features[members]), k1=4, k2=2, lambda_value=0.3)
            np.testing.assert_array_equal(labels[members], agglomerative(reranked, quantile=cut.value))
        else:
            assert same_partition(labels[members], ids[members])
        assert labels[members].min() == 0  # labels are local to each camera


def test_every_reranking_setting_reaches_the_reranking(monkeypatch):
    """The tests above use lambda's default, so a call that dropped it would pass them."""
    from iics import pseudo_labels

    seen = []

    def spy(dist, k1, k2, lambda_value):
        seen.append((k1, k2, lambda_value))
        return k_reciprocal(dist, k1, k2, lambda_value)

    monkeypatch.setattr(pseudo_labels, "k_reciprocal", spy)
    features, _ = blobs()
    cameras = np.tile([0, 1], len(features) // 2)
    intra_camera_labels(features, cameras, ClusterCut("count", 3), Reranking(k1=4, k2=2, lambda_value=0.7))
    probs = torch.softmax(torch.randn(len(features), 6, generator=torch.Generator().manual_seed(0)), dim=1)
    inter_camera_labels(features, probs, cameras, 0.5, ClusterCut("count", 3), Reranking(k1=3, k2=1, lambda_value=0.9))
    assert seen == [(4, 2, 0.7), (4, 2, 0.7), (3, 1, 0.9)]


def test_count_cut_caps_small_cameras_at_half():
    features, _ = blobs(num_ids=3, per_id=4)
    labels = intra_camera_labels(features, np.zeros(12, dtype=int), ClusterCut("count", 600), Reranking(k1=4, k2=2))
    assert labels.max() + 1 == 6


def features_without_identity(pairs=6, seed=0):
    """``pairs`` identities seen once in camera 0 and once in camera 1, then two more people, both in
    camera 0, whose classifier outputs are identical (Jaccard 1). The features say nothing about
    identity: random in 1024-d, every cosine distance 1 +- 0.1. Only the cross-camera Jaccard term can
    join the pairs, and it must not join the two camera-0 people (same camera: plain distance)."""
    features = torch.randn(2 * pairs + 2, 1024, generator=torch.Generator().manual_seed(seed))
    ids = np.arange(2 * pairs + 2) // 2
    ids[-1] += 1  # the last two are different people
    cameras = np.concatenate([np.tile([0, 1], pairs), [0, 0]])
    classes = torch.as_tensor(np.arange(2 * pairs + 2) // 2)  # the last two share a class
    return features, torch.nn.functional.one_hot(classes, pairs + 1).float(), cameras, ids


@pytest.mark.parametrize("cut", [ClusterCut("count", 8), ClusterCut("threshold", 0.3)])
def test_inter_camera_labels_are_decided_by_cross_camera_jaccard(cut):
    features, probs, cameras, ids = features_without_identity()
    rerank = Reranking(k1=3, k2=2)
    labels = inter_camera_labels(features, probs, cameras, 0.5, cut, rerank)
    assert same_partition(labels, ids)
    assert labels[-1] != labels[-2]  # same camera, Jaccard 1, different people: kept apart
    # Without the Jaccard term the features alone cannot find the pairs.
    assert not same_partition(inter_camera_labels(features, probs, cameras, 0.0, cut, rerank), ids)
    # Nor can classifier outputs that do not follow the identities.
    shuffled = probs[torch.randperm(len(probs), generator=torch.Generator().manual_seed(1))]
    assert not same_partition(inter_camera_labels(features, shuffled, cameras, 0.5, cut, rerank), ids)


@pytest.mark.parametrize("method,value", [("nearest", 1), ("count", 0), ("count", 2.5), ("quantile", 1.5), ("threshold", -1)])
def test_bad_cuts_are_rejected(method, value):
    with pytest.raises(ValueError):
        ClusterCut(method, value)


def test_plain_distances_are_released_before_the_linkage(monkeypatch):
    """The un-re-ranked matrix (4.3 GB at MSMT17 scale) must not stay alive through the linkage."""
    import weakref

    from iics import pseudo_labels

    made, alive = [], []

    def tracked(make):
        def wrapper(*args):
            out = make(*args)
            made.append(weakref.ref(out))
            return out

        return wrapper

    cut_tree = pseudo_labels.agglomerative

    def linkage(*args, **kwargs):
        alive.extend(ref() is not None for ref in made)
        return cut_tree(*args, **kwargs)

    monkeypatch.setattr(pseudo_labels, "inter_camera_distance", tracked(pseudo_labels.inter_camera_distance))
    monkeypatch.setattr(pseudo_labels, "cosine_distance", tracked(pseudo_labels.cosine_distance))
    monkeypatch.setattr(pseudo_labels, "agglomerative", linkage)
    features, ids = blobs(num_ids=4, per_id=4)
    cameras = np.tile([0, 1], 8)
    probs = torch.nn.functional.one_hot(torch.as_tensor(ids), 4).float()
    inter_camera_labels(features, probs, cameras, 0.02, ClusterCut("count", 4), Reranking(k1=3, k2=2))
    intra_camera_labels(features, cameras, ClusterCut("count", 2), Reranking(k1=3, k2=2))
    assert len(made) == 3 and alive == [False] * 6  # 1 + 2 + 3 checks, one per linkage


def test_a_camera_the_quantile_cut_cannot_cluster_is_named():
    features, _ = blobs(num_ids=3, per_id=4)
    cameras = np.repeat([3, 7], 6)
    features[torch.from_numpy(cameras == 7)] = features[0].clone()  # camera 7: every image alike, so every distance is 0
    quantile, rerank = ClusterCut("quantile", 0.1), Reranking(k1=3, k2=2)
    with pytest.raises(ValueError, match=r"^camera 7 \(6 images\): every distance is 0"):
        intra_camera_labels(features, cameras, quantile, rerank)
    labels = intra_camera_labels(features, cameras, ClusterCut("count", 2), rerank)  # a count cut still works
    assert labels[cameras == 7].max() == 1


def test_nan_or_infinite_inputs_are_refused_before_any_clustering():
    features, _ = blobs(num_ids=3, per_id=4)
    cameras = np.repeat([0, 1], 6)
    probs = torch.softmax(torch.randn(12, 5), dim=1)
    cut, rerank = ClusterCut("count", 2), Reranking(k1=3, k2=2)
    broken = features.clone()
    broken[4, 0], broken[9, 2] = torch.nan, torch.inf
    with pytest.raises(ValueError, match=r"^features: 2 of 12 rows hold NaN or infinite values$"):
        intra_camera_labels(broken, cameras, cut, rerank)
    with pytest.raises(ValueError, match=r"^features: 2 of 12 rows"):
        inter_camera_labels(broken, probs, cameras, 0.02, cut, rerank)
    probs[3] = torch.nan
    with pytest.raises(ValueError, match=r"^classifier probabilities: 1 of 12 rows"):
        inter_camera_labels(features, probs, cameras, 0.02, cut, rerank)


def test_cameras_or_probabilities_that_do_not_match_the_features_are_refused():
    features, _ = blobs(num_ids=3, per_id=4)
    cameras = np.repeat([0, 1], 6)
    probs = torch.softmax(torch.randn(12, 5), dim=1)
    cut, rerank = ClusterCut("count", 2), Reranking(k1=3, k2=2)
    with pytest.raises(ValueError, match=r"^cameras: 11 entries for 12 feature rows$"):
        intra_camera_labels(features, cameras[1:], cut, rerank)
    with pytest.raises(ValueError, match=r"^probabilities: 13 entries for 12 feature rows$"):
        inter_camera_labels(features, torch.cat([probs, probs[:1]]), cameras, 0.02, cut, rerank)
    with pytest.raises(ValueError, match=r"^camera_index: 11 entries for 12 feature rows$"):
        inter_camera_labels(features, probs, cameras[:-1], 0.02, cut, rerank)
