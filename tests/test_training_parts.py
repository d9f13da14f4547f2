import numpy as np
import pytest
import torch

from iics.losses import batch_hard_triplet
from iics.sampling import per_camera_batches, pk_batches


def test_batch_hard_triplet_matches_loop_reference():
    torch.manual_seed(0)
    features = torch.randn(12, 5)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 1, 0])
    expected = []
    for i in range(12):
        pos = [torch.dist(features[i], features[j]) for j in range(12) if labels[j] == labels[i]]
        neg = [torch.dist(features[i], features[j]) for j in range(12) if labels[j] != labels[i]]
        expected.append(torch.relu(max(pos) - min(neg) + 0.3))
    assert torch.allclose(batch_hard_triplet(features, labels, 0.3), torch.stack(expected).mean(), atol=1e-5)



def test_batch_hard_triplet_without_negatives_is_zero_with_finite_gradients():
    features = torch.randn(6, 4, requires_grad=True)
    loss = batch_hard_triplet(features, torch.zeros(6, dtype=torch.long), 0.3)  # one identity: no negative
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(features.grad).all()


def test_per_camera_batches_cover_smallest_camera_once():
    camids = np.array([0] * 20 + [1] * 9 + [2] * 17)
    batches = per_camera_batches(camids, 4, np.random.default_rng(0))
    assert len(batches) == 2  # 9 // 4
    for iteration in batches:
        assert [set(camids[idx]) for idx in iteration] == [{0}, {1}, {2}]
    seen = np.concatenate([it[1] for it in batches])
    assert len(set(seen)) == len(seen) == 8


def test_per_camera_batches_error_when_camera_too_small():
    with pytest.raises(ValueError, match="at least 8"):
        per_camera_batches(np.array([0] * 10 + [1] * 3), 8, np.random.default_rng(0))


def test_pk_batches_shape_and_replacement():
    labels = np.array([0] * 6 + [1] * 2 + [2] * 1 + [3] * 5 + [4] * 4)
    batches = pk_batches(labels, 2, 4, np.random.default_rng(1))
    assert len(batches) == 2  # 5 ids // 2
    for batch in batches:
        assert len(batch) == 8
        ids = labels[batch]
        assert len(set(ids)) == 2 and all((ids == i).sum() == 4 for i in set(ids))
    with pytest.raises(ValueError, match="pseudo-identities"):
        pk_batches(labels, 16, 4, np.random.default_rng(0))
