"""The CUDA paths give what the CPU paths give: re-ranking, Jaccard affinity, the linkage cut on the
GPU (parallel reciprocal merges) against scipy's on the host, the pseudo-labels end to end, the
normalisation layers and the evaluation's ranking.

Skipped without a CUDA device. The inputs are small and random, with clear gaps between the merge
heights that a cut separates, so float32 rounding differences between devices cannot move a label.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from iics import evaluation
from iics.affinity import jaccard_similarity
from iics.cluster import agglomerative
from iics.evaluation import evaluate
from iics.models.aibn import AIBN2d
from iics.models.batchnorm import BatchNorm2d, split_batch_statistics
from iics.pseudo_labels import inter_camera_labels, intra_camera_labels
from iics.rerank import k_reciprocal
from iics.runtime import compute_context, free_memory
from iics.settings import ClusterCut, Reranking

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CUDA = torch.device("cuda")


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def euclidean(n: int, dim: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, dim, generator=generator(seed), dtype=torch.float64)
    return torch.cdist(x, x).float()


def clustered_cosine(n: int, seed: int) -> torch.Tensor:
    """Cosine distances of points around n // 8 centres (structure at every height), float32."""
    g = generator(seed)
    centres = torch.randn(max(n // 8, 1), 16, generator=g)
    x = centres[torch.randint(0, len(centres), (n,), generator=g)] + 0.6 * torch.randn(n, 16, generator=g)
    x = torch.nn.functional.normalize(x, dim=1)
    return (1 - x @ x.T).clamp_min(0).float()


def blobs(num_ids: int, per_id: int, seed: int, noise: float = 0.05):
    g = generator(seed)
    centres = torch.randn(num_ids, 32, generator=g)
    features = centres.repeat_interleave(per_id, 0) + noise * torch.randn(num_ids * per_id, 32, generator=g)
    return features, np.repeat(np.arange(num_ids), per_id)


@pytest.mark.parametrize("n,k1,k2", [(30, 5, 3), (80, 20, 6), (120, 20, 1)])
def test_k_reciprocal(n, k1, k2):
    d = euclidean(n, 4, seed=n + k1)
    on_cpu = k_reciprocal(d, k1, k2, 0.3)
    on_gpu = k_reciprocal(d.to(CUDA), k1, k2, 0.3)
    assert on_gpu.is_cuda and on_gpu.dtype == torch.float32
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-5, rtol=0)


def test_k_reciprocal_duplicates_stay_non_negative():
    base = torch.randn(20, 8, generator=generator(0))
    x = torch.nn.functional.normalize(base.repeat_interleave(3, 0), dim=1)
    d = (1 - x @ x.T).clamp_min(0)
    on_gpu = k_reciprocal(d.to(CUDA), 20, 6, 0.3)
    assert (on_gpu >= 0).all()
    torch.testing.assert_close(on_gpu.cpu(), k_reciprocal(d, 20, 6, 0.3), atol=1e-5, rtol=0)


def test_jaccard_similarity():
    logits = torch.randn(200, 3, 40, generator=generator(1)) * 4
    p = torch.softmax(logits, dim=-1).reshape(200, 120)
    p[0] = 0.0  # an all-zero row: 0/0 -> 0
    on_gpu = jaccard_similarity(p.to(CUDA))
    assert on_gpu.is_cuda
    torch.testing.assert_close(on_gpu.cpu(), jaccard_similarity(p), atol=1e-5, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("asymmetric", [False, True])
def test_agglomerative_every_cut(seed, asymmetric):
    d = clustered_cosine(240, seed)
    if asymmetric:  # the lower triangle must not be read
        d = d + torch.rand(240, 240, generator=generator(seed + 10)).tril(-1)
    d[3, 4] = d[4, 3] = 0.0  # a zero, left out of the quantile
    cuts = [{"n_clusters": k} for k in (1, 7, 30, 120, 240)]
    cuts += [{"threshold": t} for t in (0.05, 0.2, 0.5)]
    cuts += [{"quantile": q} for q in (0.0, 0.0017, 0.0025, 0.05, 0.5, 1.0)]
    for cut in cuts:
        np.testing.assert_array_equal(agglomerative(d.to(CUDA), **cut), agglomerative(d, **cut), err_msg=str(cut))


def within_gap_quantile(ids: np.ndarray) -> float:
    """A quantile whose position is the first distance between identities (every within-identity
    distance lies below it): a cut in the gap, not among close merge heights."""
    n = len(ids)
    same = int((ids[:, None] == ids[None, :])[np.triu_indices(n, 1)].sum())
    return (same + 0.25) / (n * (n - 1) // 2)


@pytest.mark.parametrize("method", ["count", "threshold", "quantile"])
def test_intra_camera_labels(method):
    features, ids = blobs(num_ids=6, per_id=6, seed=4)
    cameras = np.tile([0, 1, 2], len(ids) // 3)
    value = {"count": 6, "threshold": 0.2, "quantile": within_gap_quantile(ids[cameras == 0])}[method]
    cut, rerank = ClusterCut(method, value), Reranking(k1=4, k2=2)
    on_cpu = intra_camera_labels(features, cameras, cut, rerank)
    np.testing.assert_array_equal(intra_camera_labels(features.to(CUDA), cameras, cut, rerank), on_cpu)
    for cam in (0, 1, 2):  # and the cut found the identities, so it was not at a near-tie
        members = cameras == cam
        assert len(np.unique(on_cpu[members])) == 6
        assert len(set(zip(on_cpu[members].tolist(), ids[members].tolist()))) == 6


@pytest.mark.parametrize("method", ["count", "threshold", "quantile"])
def test_inter_camera_labels(method):
    features, ids = blobs(num_ids=8, per_id=4, seed=5)
    cameras = np.tile([0, 1], len(ids) // 2)
    probs = torch.softmax(4 * torch.nn.functional.one_hot(torch.as_tensor(ids), 8).float(), dim=1)
    value = {"count": 8, "threshold": 0.2, "quantile": within_gap_quantile(ids)}[method]
    cut, rerank = ClusterCut(method, value), Reranking(k1=3, k2=2)
    on_cpu = inter_camera_labels(features, probs, cameras, 0.02, cut, rerank)
    on_gpu = inter_camera_labels(features.to(CUDA), probs.to(CUDA), cameras, 0.02, cut, rerank)
    np.testing.assert_array_equal(on_gpu, on_cpu)
    assert len(np.unique(on_cpu)) == 8 and len(set(zip(on_cpu.tolist(), ids.tolist()))) == 8


@pytest.mark.parametrize("kind", ["aibn", "batchnorm"])
@pytest.mark.parametrize("parts", [1, 6])
@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
def test_normalisation_layer(kind, parts, bf16):
    """AIBN2d's hand-written forward and backward, and the split BatchNorm2d (the library's batch
    norm over chunks rearranged as channels), on the device against the same layer in float64 on
    the host: output, input and parameter gradients (AIBN's mixing weight's too), running
    statistics. In bf16 the input is channels_last, as training gives it."""
    g = generator(5)
    x = torch.randn(6 * 4, 16, 16, 8, generator=g, dtype=torch.float64) * 2 + 1
    upstream = torch.randn(x.shape, generator=g, dtype=torch.float64)
    aibn = kind == "aibn"
    results = []
    for device, dtype in ((torch.device("cpu"), torch.float64), (CUDA, torch.float32)):
        layer = (AIBN2d(16) if aibn else BatchNorm2d(16)).to(device, dtype).train()
        with torch.no_grad():
            layer.weight.copy_(torch.linspace(0.5, 1.5, 16))
            layer.bias.copy_(torch.linspace(-1, 1, 16))
        alpha = nn.Parameter(torch.full((1,), 0.3, device=device, dtype=dtype))
        inputs = x.detach().to(device, dtype).requires_grad_()
        low = bf16 and device.type == "cuda"
        given = inputs.to(torch.bfloat16).contiguous(memory_format=torch.channels_last) if low else inputs
        with compute_context(device, low), split_batch_statistics(layer, parts):
            out = layer(given, alpha) if aibn else layer(given)
        assert out.dtype == given.dtype
        out.backward(upstream.to(device, out.dtype))
        alpha_grad = [alpha.grad] if aibn else []
        results.append([t.detach().double().cpu() for t in (out, inputs.grad, layer.weight.grad, layer.bias.grad,
                                                            *alpha_grad, layer.running_mean, layer.running_var)])
    names = ("output", "input grad", "weight grad", "bias grad", *(["alpha grad"] if aibn else []), "running mean",
             "running var")
    tolerance = 3e-2 if bf16 else 1e-4
    for name, reference, got in zip(names, *results, strict=True):
        scale = float(reference.abs().max())
        torch.testing.assert_close(got, reference, rtol=tolerance, atol=tolerance * scale, msg=name)


def test_evaluation_ranking(monkeypatch):
    """mAP and CMC ranked on the device equal those ranked on the host, over several chunks and with
    ties (distances on a coarse grid, so many are equal and gallery order decides)."""
    monkeypatch.setattr(evaluation, "MAX_CHUNK_ELEMENTS", 300 * 7)  # 9 chunks of 7 queries or fewer
    g = generator(6)
    dist = torch.randint(0, 20, (57, 300), generator=g).float() / 20
    labels = (torch.randint(0, 12, (57,), generator=g), torch.randint(0, 12, (300,), generator=g),
              torch.randint(0, 4, (57,), generator=g), torch.randint(0, 4, (300,), generator=g))
    on_cpu = evaluate(dist, *labels, topk=(1, 3, 5, 10))
    on_gpu = evaluate(dist.to(CUDA), *(x.to(CUDA) for x in labels), topk=(1, 3, 5, 10))
    assert on_gpu == pytest.approx(on_cpu, rel=1e-12)


def test_free_memory_counts_what_the_allocator_holds_unused():
    """A freed tensor's memory stays reserved by PyTorch for reuse, which CUDA counts as used: the
    re-ranking check before evaluation must count it as free."""
    block = torch.empty(64 * 2**20, dtype=torch.uint8, device=CUDA)
    del block
    assert free_memory(CUDA) >= torch.cuda.mem_get_info()[0] + 64 * 2**20  # torch < 2.5 refuses an index-less device
