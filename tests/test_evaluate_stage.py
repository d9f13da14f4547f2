"""stages/evaluate.py's re-ranked scores: the query x gallery block of the joint re-ranking, and a
one-line exit, before any work, when the matrices would not fit in the device's free memory."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "stages"))

import evaluate  # noqa: E402

from iics import rerank  # noqa: E402
from iics.features import cosine_distance  # noqa: E402
from iics.settings import Reranking  # noqa: E402

CPU = torch.device("cpu")


def features(n: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float32))


def test_reranked_distances_rerank_queries_and_gallery_as_one_set():
    q, g = features(5, 0), features(12, 1)
    settings = Reranking(k1=6, k2=3, lambda_value=0.7)  # not the default 0.3: a dropped lambda would show
    joint = rerank.k_reciprocal(cosine_distance(torch.cat([q, g])).numpy(), 6, 3, 0.7)
    out = evaluate.reranked_distances(q, g, settings, CPU, "evaluate r01")
    assert out.shape == (5, 12)
    np.testing.assert_allclose(out.numpy(), joint[:5, 5:], atol=1e-6)


def test_reranking_that_would_not_fit_stops_before_the_work(monkeypatch):
    """Market-1501's query + gallery (19,281 images) need 12 x n^2 bytes, 4.2 GiB."""
    monkeypatch.setattr(evaluate, "free_memory", lambda device: 3 * 2**30)
    monkeypatch.setattr(rerank, "k_reciprocal", lambda *args: pytest.fail("re-ranking started"))
    with pytest.raises(SystemExit) as stop:
        evaluate.reranked_distances(features(3_368, 0), features(15_913, 1), Reranking(), CPU, "evaluate r05")
    assert str(stop.value) == ("evaluate r05: re-ranking 19,281 query and gallery images needs about 4.2 GiB, and cpu "
                               "has 3.0 GiB free; set evaluate.rerank.enabled=false")
