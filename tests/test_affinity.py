from __future__ import annotations

import numpy as np
import pytest
import torch

from iics import affinity
from iics.affinity import inter_camera_distance, jaccard_similarity, mu_schedule


def loop_jaccard(p):
    n = p.shape[0]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            num = sum(min(a, b) for a, b in zip(p[i], p[j]))
            den = sum(max(a, b) for a, b in zip(p[i], p[j]))
            out[i, j] = num / den if den > 0 else 0.0
    return out


def random_probs(n, c, seed):
    x = np.random.default_rng(seed).random((n, c))
    x[0] = 0.0  # an all-zero row: 0/0 -> 0
    return x


def test_jaccard_matches_loop_reference():
    p = random_probs(12, 5, 0)
    out = jaccard_similarity(p)
    assert isinstance(out, np.ndarray) and out.shape == (12, 12)
    np.testing.assert_allclose(out, loop_jaccard(p), atol=1e-12)
    assert out[0, 0] == 0.0 and out[3, 3] == pytest.approx(1.0)


def test_jaccard_tiny_chunks(monkeypatch):
    p = random_probs(13, 4, 1)
    ref = loop_jaccard(p)
    monkeypatch.setattr(affinity, "MAX_CHUNK_ELEMENTS", {"cpu": 1})
    np.testing.assert_allclose(jaccard_similarity(p), ref, atol=1e-12)
    monkeypatch.setattr(affinity, "MAX_CHUNK_ELEMENTS", {"cpu": 13 * 5})  # 5 rows per chunk
    np.testing.assert_allclose(jaccard_similarity(p), ref, atol=1e-12)


@pytest.mark.parametrize("rows_per_chunk", [1, 7, None])  # None: the default, 16 chunks of this 100
def test_jaccard_chunks_mirrored_give_the_whole_matrix_bits(monkeypatch, rows_per_chunk):
    """Each chunk computes its own and the later rows and mirrors them to the earlier ones: the
    result is the plain formula over the whole matrix at once, bit for bit, and exactly symmetric."""
    logits = torch.randn(100, 3, 20, generator=torch.Generator().manual_seed(4)) * 3
    p = torch.softmax(logits, dim=-1).reshape(100, 60)
    p[5] = 0.0
    both = p.sum(1)[:, None] + p.sum(1)[None, :]
    smin = (both - torch.cdist(p, p, p=1.0)) / 2
    smax = both - smin
    whole = torch.where(smax > 0, smin / torch.where(smax > 0, smax, 1.0), 0.0).clamp(0.0, 1.0)
    if rows_per_chunk is not None:
        monkeypatch.setattr(affinity, "MAX_CHUNK_ELEMENTS", {"cpu": 100 * rows_per_chunk})
    out = jaccard_similarity(p)
    assert torch.equal(out, whole) and torch.equal(out, out.T)


def test_jaccard_matches_min_sum_on_softmax_outputs():
    """The shape the pipeline feeds it: several camera heads' softmax outputs side by side (rows sum
    to the number of heads, most entries tiny), float32."""
    logits = torch.randn(300, 4, 50, generator=torch.Generator().manual_seed(3)) * 4
    p = torch.softmax(logits, dim=-1).reshape(300, 200)
    smin = torch.minimum(p[:, None, :], p[None, :, :]).sum(-1)
    smax = torch.maximum(p[:, None, :], p[None, :, :]).sum(-1)
    torch.testing.assert_close(jaccard_similarity(p), smin / smax, atol=2e-6, rtol=0)


def test_jaccard_torch_in_torch_out():
    p = random_probs(6, 3, 2)
    out = jaccard_similarity(torch.tensor(p, dtype=torch.float32))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), loop_jaccard(p), atol=1e-6)


def test_jaccard_rejects_negative():
    with pytest.raises(ValueError, match="non-negative"):
        jaccard_similarity(np.array([[0.5, -0.1]]))
    with pytest.raises(ValueError, match="2-D"):
        jaccard_similarity(np.array([0.5, 0.1]))


def test_inter_camera_distance_hand_case():
    # f0 = f1 (cos 1), f2 orthogonal to both (cos 0).
    features = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    probs = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    cams = np.array([0, 1, 1])
    # J01 = (0.5 + 0) / (1 + 0.5) = 1/3, J02 = 0, J12 = 0.5 / 1 = 0.5
    # pair (0, 1): different cameras -> 0 - 0.6 * 1/3 = -0.2
    # pair (0, 2): different cameras -> 1 - 0 = 1
    # pair (1, 2): same camera       -> 1 (Jaccard not used)
    expected = np.array([[0.0, -0.2, 1.0], [-0.2, 0.0, 1.0], [1.0, 1.0, 0.0]])
    out = inter_camera_distance(features, probs, cams, mu=0.6)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    out_t = inter_camera_distance(torch.tensor(features), torch.tensor(probs), torch.tensor(cams), 0.6)
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_allclose(out_t.numpy(), expected, atol=1e-12)


def test_inter_camera_distance_shape_errors():
    with pytest.raises(ValueError, match="probs"):
        inter_camera_distance(np.ones((3, 2)), np.ones((2, 2)), [0, 1, 1], 0.5)
    with pytest.raises(ValueError, match="cams"):
        inter_camera_distance(np.ones((3, 2)), np.ones((3, 2)), [0, 1], 0.5)


def test_mu_schedule():
    assert mu_schedule(0.5, 0, 10) == pytest.approx(0.5)
    assert mu_schedule(0.5, 10, 10) == pytest.approx(0.0)
    assert mu_schedule(0.5, 5, 10) == pytest.approx(0.5 * 0.5**0.6)
    assert mu_schedule(1.0, 3, 4) == pytest.approx(0.25**0.6)
    with pytest.raises(ValueError):
        mu_schedule(0.5, 11, 10)
    with pytest.raises(ValueError):
        mu_schedule(0.5, 0, 0)
    with pytest.raises(ValueError, match=r"^mu must be a number >= 0, got -0.1$"):  # would pull cameras apart
        mu_schedule(-0.1, 0, 10)
