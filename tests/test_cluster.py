from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import AgglomerativeClustering

from iics.cluster import (
    _cut_on_device,
    _labels_from_merges,
    agglomerative,
    capped_cluster_count,
    quantile_threshold,
)
from iics.reciprocal_linkage import average_linkage_merges


def random_symmetric(n, seed):
    x = np.random.default_rng(seed).normal(size=(n, 3))
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    return d


def same_partition(a, b):
    a, b = np.asarray(a), np.asarray(b)
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("quantile", [0.05, 0.2, 0.5])
def test_threshold_matches_sklearn(seed, quantile):
    d = random_symmetric(40, seed)
    thr = float(np.quantile(d[np.triu_indices(40, 1)], quantile))
    labels = agglomerative(d, threshold=thr)
    ref = AgglomerativeClustering(
        n_clusters=None, metric="precomputed", linkage="average", distance_threshold=thr
    ).fit_predict(d)
    assert same_partition(labels, ref)
    assert 1 < len(np.unique(labels)) < 40


@pytest.mark.parametrize("k", [1, 5, 17, 40])
def test_n_clusters_exact_and_matches_sklearn(k):
    d = random_symmetric(40, 7)
    labels = agglomerative(d, n_clusters=k)
    assert labels.dtype == np.int64
    assert len(np.unique(labels)) == k
    ref = AgglomerativeClustering(n_clusters=k, metric="precomputed", linkage="average").fit_predict(d)
    assert same_partition(labels, ref)


def test_asymmetric_reads_upper_triangle_only():
    d = random_symmetric(25, 3)
    noisy = d.copy()
    lower = np.tril_indices(25, -1)
    noisy[lower] = np.random.default_rng(0).random(len(lower[0])) * 10
    np.testing.assert_array_equal(agglomerative(noisy, n_clusters=6), agglomerative(d, n_clusters=6))
    ref = AgglomerativeClustering(n_clusters=6, metric="precomputed", linkage="average").fit_predict(noisy)
    assert same_partition(agglomerative(noisy, n_clusters=6), ref)


def test_labels_in_order_of_first_appearance_and_torch_input():
    # Two obvious groups: {0, 2} and {1, 3}.
    d = np.array(
        [
            [0.0, 5.0, 0.1, 5.0],
            [5.0, 0.0, 5.0, 0.2],
            [0.1, 5.0, 0.0, 5.0],
            [5.0, 0.2, 5.0, 0.0],
        ]
    )
    np.testing.assert_array_equal(agglomerative(d, n_clusters=2), [0, 1, 0, 1])
    np.testing.assert_array_equal(agglomerative(torch.tensor(d), threshold=1.0), [0, 1, 0, 1])
    # Strictly below the threshold: a merge at height exactly 0.2 is not applied.
    np.testing.assert_array_equal(agglomerative(d, threshold=0.2), [0, 1, 0, 2])
    np.testing.assert_array_equal(agglomerative(d, threshold=0.05), [0, 1, 2, 3])


def test_single_item():
    np.testing.assert_array_equal(agglomerative(np.zeros((1, 1)), n_clusters=1), [0])


def test_quantile_threshold_hand_made():
    # Upper-triangle non-zero entries: 0.4, 0.1, 0.3, 0.2 (the 0 is dropped); the lower
    # triangle (99) is never read. Sorted: [0.1, 0.2, 0.3, 0.4], m = 4.
    d = np.array(
        [
            [0.0, 0.4, 0.1, 0.0],
            [99, 0.0, 0.3, 0.2],
            [99, 99, 0.0, 0.0],
            [99, 99, 99, 0.0],
        ]
    )
    assert quantile_threshold(d, 0.0) == pytest.approx(0.1)  # round(0) = 0
    assert quantile_threshold(d, 0.3) == pytest.approx(0.2)  # round(1.2) = 1
    assert quantile_threshold(d, 0.4) == pytest.approx(0.3)  # round(1.6) = 2 (floor would give 1)
    assert quantile_threshold(d, 0.5) == pytest.approx(0.3)  # round(2.0) = 2
    assert quantile_threshold(d, 0.625) == pytest.approx(0.3)  # round(2.5) = 2 (half to even)
    assert quantile_threshold(d, 1.0) == pytest.approx(0.4)  # round(4) = 4, clamped to 3


@pytest.mark.parametrize("q", [0.0, 0.05, 0.3, 1.0])
def test_quantile_cut_is_the_threshold_cut_at_that_quantile(q):
    d = random_symmetric(50, 5)
    d[3, 4] = d[4, 3] = 0.0  # a zero distance, left out of the quantile
    expected = agglomerative(d, threshold=quantile_threshold(d, q))
    np.testing.assert_array_equal(agglomerative(d, quantile=q), expected)
    if 0 < q < 1:
        assert 1 < len(np.unique(expected)) < 50  # a cut that tells wrong thresholds apart


def test_capped_cluster_count():
    assert capped_cluster_count(100, 30) == 30
    assert capped_cluster_count(30, 30) == 15  # n == K halves too (the reference would not)
    assert capped_cluster_count(7, 30) == 3
    assert capped_cluster_count(1, 30) == 1


def test_errors():
    d = random_symmetric(5, 0)
    with pytest.raises(ValueError, match="exactly one"):
        agglomerative(d)
    with pytest.raises(ValueError, match="exactly one"):
        agglomerative(d, n_clusters=2, threshold=0.5)
    with pytest.raises(ValueError, match="exactly one"):
        agglomerative(d, threshold=0.5, quantile=0.1)
    with pytest.raises(ValueError, match="q must be"):
        agglomerative(d, quantile=-0.1)
    with pytest.raises(ValueError, match="non-zero"):
        agglomerative(np.zeros((3, 3)), quantile=0.5)
    with pytest.raises(ValueError, match="n_clusters"):
        agglomerative(d, n_clusters=6)
    with pytest.raises(ValueError, match="n_clusters"):
        agglomerative(d, n_clusters=0)
    with pytest.raises(ValueError, match="square"):
        agglomerative(np.zeros((2, 3)), n_clusters=1)
    bad = d.copy()
    bad[0, 1] = np.inf
    with pytest.raises(ValueError, match="finite"):
        agglomerative(bad, n_clusters=2)
    with pytest.raises(ValueError, match="q must be"):
        quantile_threshold(d, 1.5)
    with pytest.raises(ValueError, match="non-zero"):
        quantile_threshold(np.zeros((3, 3)), 0.5)


def test_float32_input_gives_the_float64_result_of_the_same_values():
    d32 = random_symmetric(60, 4).astype(np.float32)
    for cut in ({"n_clusters": 9}, {"threshold": float(np.median(d32))}):
        np.testing.assert_array_equal(agglomerative(d32, **cut), agglomerative(d32.astype(np.float64), **cut))
        np.testing.assert_array_equal(agglomerative(torch.from_numpy(d32), **cut), agglomerative(d32, **cut))
    assert quantile_threshold(d32, 0.1) == quantile_threshold(d32.astype(np.float64), 0.1)


# The GPU path (reciprocal pairs merged in parallel, iics.reciprocal_linkage) run on CPU tensors:
# the same tree as scipy's nearest-neighbour chain, hence the same labels for every cut.


def clustered_distances(n, seed, asymmetric=False):
    """Cosine distances of points around n // 8 centres: a tree with structure at every height."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(max(n // 8, 1), 16, generator=g)
    x = torch.nn.functional.normalize(centres[torch.randint(0, len(centres), (n,), generator=g)]
                                      + 0.6 * torch.randn(n, 16, generator=g), dim=1)
    d = (1 - x @ x.T).clamp_min(0)
    if asymmetric:  # the lower triangle must not be read
        d = d + torch.rand(n, n, generator=g).tril(-1)
    return d.float()


def device_cut(d, **cut):
    return _cut_on_device(d, **{"n_clusters": None, "threshold": None, "quantile": None, **cut})


def test_parallel_reciprocal_merges_build_scipy_tree():
    from scipy.cluster.hierarchy import linkage

    for n, seed in [(2, 0), (3, 1), (57, 2), (300, 3)]:
        d = clustered_distances(n, seed)
        a, b, height = average_linkage_merges(d)
        assert len(height) == n - 1 and height.dtype == torch.float64
        condensed = d.double().numpy()[np.triu_indices(n, 1)]
        np.testing.assert_allclose(np.sort(height.numpy()), linkage(condensed, "average")[:, 2], rtol=0, atol=1e-12)
        assert (_labels_from_merges(a.numpy(), b.numpy(), n) == 0).all()  # the merges join every leaf


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("asymmetric", [False, True])
def test_device_cut_equals_host_cut(seed, asymmetric):
    d = clustered_distances(240, seed, asymmetric)
    cuts = [{"n_clusters": k} for k in (1, 7, 30, 120, 240)]
    cuts += [{"threshold": t} for t in (0.05, 0.2, 0.5)] + [{"quantile": q} for q in (0.0, 0.0017, 0.05, 1.0)]
    for cut in cuts:
        host = agglomerative(d, **cut)
        np.testing.assert_array_equal(device_cut(d, **cut), host, err_msg=str(cut))
        if "n_clusters" in cut:
            assert len(np.unique(host)) == cut["n_clusters"]
    assert len({len(np.unique(agglomerative(d, threshold=t))) for t in (0.05, 0.2, 0.5)}) == 3


def test_device_cut_edge_cases():
    np.testing.assert_array_equal(device_cut(torch.zeros(1, 1), n_clusters=1), [0])
    d = torch.tensor([[0.0, 5.0, 0.1, 5.0], [5.0, 0.0, 5.0, 0.2], [0.1, 5.0, 0.0, 5.0], [5.0, 0.2, 5.0, 0.0]])
    np.testing.assert_array_equal(device_cut(d, n_clusters=2), [0, 1, 0, 1])
    np.testing.assert_array_equal(device_cut(d, threshold=0.2), [0, 1, 0, 2])  # strictly below
    np.testing.assert_array_equal(device_cut(d, threshold=0.05), [0, 1, 2, 3])
    bad = d.clone()
    bad[0, 3] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        device_cut(bad, n_clusters=2)
    bad = d.clone()
    bad[3, 0] = float("inf")  # below the diagonal: never read
    np.testing.assert_array_equal(device_cut(bad, n_clusters=2), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="non-zero"):
        device_cut(torch.zeros(3, 3), quantile=0.5)


# The device quantile (a chunked copy of the non-zero upper triangle, then a sort of a sampled
# bracket, or torch.kthvalue) against a plain NumPy reference.


def numpy_quantile(d, q):
    """The spec's rule, written out: position round(q * m) (clamped) of the sorted non-zero upper entries."""
    upper = np.asarray(d)[np.triu_indices(len(d), 1)]
    values = np.sort(upper[upper != 0])
    return float(values[min(max(round(q * len(values)), 0), len(values) - 1)])


def tied_distances(n, seed):
    """Asymmetric matrix of few distinct values (many exact ties), zeros included, some negative."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(-1, 6, (n, n), generator=g).float() / 4).clamp_min_(-0.25)


QUANTILES = (0.0, 0.0017, 0.0025, 0.01, 0.1, 0.37, 0.5, 0.9, 0.999, 1.0)


@pytest.mark.parametrize("rows_per_chunk", ["all", "one"])
def test_device_quantile_is_the_numpy_reference(monkeypatch, rows_per_chunk):
    from iics import cluster

    if rows_per_chunk == "one":
        monkeypatch.setattr(cluster, "QUANTILE_CHUNK_ELEMENTS", 1)
    inputs = [tied_distances(n, seed) for n, seed in [(2, 0), (5, 1), (60, 2), (90, 3)]]
    inputs += [clustered_distances(n, seed, asymmetric=True) for n, seed in [(70, 4), (120, 5)]]
    rows, cols = np.triu_indices(120, 1)
    inputs[-1][rows[:300], cols[:300]] = 0.0  # the first rows' upper entries: zeros, left out
    for d in inputs:
        for q in QUANTILES:
            expected = numpy_quantile(d.numpy(), q)
            assert quantile_threshold(d, q) == expected
            assert cluster._device_quantile(d, q) == expected, (len(d), q)
            np.testing.assert_array_equal(
                device_cut(d, quantile=q), device_cut(d, threshold=expected), err_msg=f"{len(d)} {q}"
            )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_device_quantile_cut_equals_host_cut_with_zeros(monkeypatch, seed):
    from iics import cluster

    monkeypatch.setattr(cluster, "QUANTILE_CHUNK_ELEMENTS", 1000)  # several row chunks
    d = clustered_distances(150, seed)
    d[10, 11] = d[11, 10] = d[40, 90] = d[90, 40] = 0.0
    for q in QUANTILES:
        np.testing.assert_array_equal(device_cut(d, quantile=q), agglomerative(d.numpy(), quantile=q), err_msg=str(q))


def test_parallel_merges_keep_the_matrix_exactly_symmetric(monkeypatch):
    """Where two pairs merge in one step their row and column updates round differently; the
    linkage must mirror that block, or the reciprocal-pair search runs on an asymmetric matrix."""
    fill_diagonal = torch.Tensor.fill_diagonal_
    symmetric = []

    def check_then_fill(self, value, wrap=False):
        if value == float("inf"):  # the start of a step
            symmetric.append(torch.equal(self, self.T))
        return fill_diagonal(self, value, wrap)

    monkeypatch.setattr(torch.Tensor, "fill_diagonal_", check_then_fill)
    for n, seed in [(240, 0), (300, 3)]:
        average_linkage_merges(clustered_distances(n, seed, asymmetric=True))
    assert len(symmetric) > 20 and all(symmetric)
