"""Intra- and inter-camera pseudo-labels on separable blobs, and the cut settings they take."""
import numpy as np
import pytest
import torch

from iics.pseudo_labels import inter_camera_labels, intra_camera_labels
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
        if cut.method != "quantile":
            assert same_partition(labels[members], ids[members])
        assert labels[members].min() == 0  # labels are local to each camera


def test_count_cut_caps_small_cameras_at_half():
    features, _ = blobs(num_ids=3, per_id=4)
    labels = intra_camera_labels(features, np.zeros(12, dtype=int), ClusterCut("count", 600), Reranking(k1=4, k2=2))
    assert labels.max() + 1 == 6


def test_inter_camera_labels_join_cameras_with_classifier_agreement():
    features, ids = blobs(num_ids=4, per_id=4)
    cameras = np.tile([0, 1], 8)
    probs = torch.nn.functional.one_hot(torch.as_tensor(ids), 4).float()
    labels = inter_camera_labels(features, probs, cameras, 0.02, ClusterCut("count", 4), Reranking(k1=3, k2=2))
    assert same_partition(labels, ids)


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
