from __future__ import annotations

import numpy as np
import pytest
import torch

from iics import rerank
from iics.features import cosine_distance
from iics.rerank import k_reciprocal


def reference(dist, k1, k2, lam):
    """Slow, loop-based k-reciprocal re-ranking with the same caps as the package."""
    d = np.asarray(dist, dtype=np.float64)
    n = d.shape[0]
    k1, k2 = min(k1, n - 1), min(k2, n)
    kh = int(np.around(k1 / 2))
    D = np.zeros((n, n))
    for j in range(n):
        lo, hi = d[:, j].min(), d[:, j].max()
        scale = hi - lo if hi > lo else 1.0
        for i in range(n):
            D[j, i] = (d[i, j] - lo) / scale  # rescale column j, then transpose
    rank = [list(np.argsort(D[i], kind="stable")) for i in range(n)]

    def reciprocal(i, k):
        return [j for j in rank[i][: k + 1] if i in rank[j][: k + 1]]

    V = np.zeros((n, n))
    for i in range(n):
        R = reciprocal(i, k1)
        E = set(R)
        for c in R:
            Rh = reciprocal(c, kh)
            if len(set(Rh) & set(R)) > 2.0 / 3.0 * len(Rh):
                E |= set(Rh)
        E = sorted(E)
        if E:
            w = np.exp(-D[i, E])
            V[i, E] = w / w.sum()
    if k2 != 1:
        Vq = np.zeros((n, n))
        for i in range(n):
            Vq[i] = np.mean([V[r] for r in rank[i][:k2]], axis=0)
        V = Vq
    J = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            s = sum(min(V[i, k], V[j, k]) for k in range(n) if V[i, k] > 0)
            J[i, j] = max(1.0 - s / (2.0 - s), 0.0)  # the reference sets negative distances to 0
    return (1 - lam) * J + lam * D


def euclidean(n, dim, seed):
    x = np.random.default_rng(seed).normal(size=(n, dim))
    sq = (x**2).sum(1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0))


CASES = [
    (7, 3, 1),
    (7, 20, 6),
    (30, 5, 3),
    (30, 20, 6),
    (30, 3, 1),
    (80, 20, 6),
    (80, 5, 3),
]


@pytest.mark.parametrize("n,k1,k2", CASES)
def test_matches_reference_numpy(n, k1, k2):
    d = euclidean(n, 4, seed=n + k1 + k2)
    out = k_reciprocal(d, k1=k1, k2=k2, lambda_value=0.3)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (n, n)
    np.testing.assert_allclose(out, reference(d, k1, k2, 0.3), atol=1e-5)


def test_asymmetric_with_ties_and_tiny_chunks(monkeypatch):
    # Integer-valued, asymmetric distances create many ties: stable order matters.
    rng = np.random.default_rng(3)
    d = rng.integers(0, 4, size=(30, 30)).astype(np.float64)
    np.fill_diagonal(d, 0)
    ref = reference(d, 5, 3, 0.3)
    np.testing.assert_allclose(k_reciprocal(d, 5, 3, 0.3), ref, atol=1e-5)
    monkeypatch.setattr(rerank, "MAX_CHUNK_ELEMENTS", {"cpu": 1})
    np.testing.assert_allclose(k_reciprocal(d, 5, 3, 0.3), ref, atol=1e-5)


def test_nonzero_diagonal_and_constant_column():
    # A constant column (max == min) and rows whose reciprocal set may be empty.
    rng = np.random.default_rng(5)
    d = rng.random((12, 12))
    d[:, 4] = 2.0
    np.testing.assert_allclose(k_reciprocal(d, 3, 3, 0.5), reference(d, 3, 3, 0.5), atol=1e-5)


def test_exact_duplicates_give_no_negative_distances():
    # Every feature three times: rows of V coincide, their min-sum rounds above 1 and the unclamped
    # Jaccard distance 1 - s / (2 - s) would be about -2e-7 (negative entries in the quantile pool).
    base = torch.randn(20, 8, generator=torch.Generator().manual_seed(0))
    d = cosine_distance(base.repeat_interleave(3, 0))
    out = k_reciprocal(d, k1=20, k2=6, lambda_value=0.3)
    assert (out >= 0).all()
    np.testing.assert_allclose(out.numpy(), reference(d.numpy(), 20, 6, 0.3), atol=1e-5)


def test_torch_in_torch_out():
    d = euclidean(30, 4, seed=1)
    out = k_reciprocal(torch.tensor(d), k1=5, k2=3)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert out.device == torch.device("cpu")
    np.testing.assert_allclose(out.numpy(), reference(d, 5, 3, 0.3), atol=1e-5)


def test_lambda_one_is_rescaled_transpose():
    d = np.random.default_rng(2).random((9, 9))
    out = k_reciprocal(d, 3, 3, lambda_value=1.0)
    expected = ((d - d.min(0)) / (d.max(0) - d.min(0))).T
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_input_is_not_modified():
    d = euclidean(20, 3, seed=4)
    keep = d.copy()
    k_reciprocal(d, 5, 3)
    np.testing.assert_array_equal(d, keep)


def test_errors():
    with pytest.raises(ValueError, match="square"):
        k_reciprocal(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        k_reciprocal(np.zeros((1, 1)))
    with pytest.raises(ValueError, match="finite"):
        d = euclidean(5, 2, seed=0)
        d[1, 2] = np.nan
        k_reciprocal(d)
    with pytest.raises(ValueError, match="k1 and k2"):
        k_reciprocal(euclidean(5, 2, seed=0), k1=0)


@pytest.mark.parametrize("num_query", [1, 9, 29])
def test_query_gallery_is_the_block_of_the_joint_reranking(num_query):
    """At evaluation queries and gallery are re-ranked as one set; the scores use the query rows'
    gallery columns of that matrix."""
    d = euclidean(30, 4, seed=num_query)
    expected = reference(d, 20, 6, 0.3)[:num_query, num_query:]
    block = rerank.query_gallery(d, num_query)
    assert isinstance(block, np.ndarray) and block.shape == (num_query, 30 - num_query)
    np.testing.assert_allclose(block, expected, atol=1e-5)
    as_tensor = rerank.query_gallery(torch.from_numpy(d), num_query)
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.is_contiguous()
    np.testing.assert_allclose(as_tensor.numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("num_query", [0, 30])
def test_query_gallery_needs_both_sets(num_query):
    with pytest.raises(ValueError, match=f"at least one query and one gallery image, got {num_query} of 30"):
        rerank.query_gallery(euclidean(30, 4, seed=0), num_query)
