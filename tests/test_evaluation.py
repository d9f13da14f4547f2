from __future__ import annotations

import numpy as np
import pytest
import torch

from iics import evaluation
from iics.evaluation import evaluate

# Gallery: g0..g5
G_PIDS = np.array([1, 2, 1, 3, 2, 1])
G_CAMS = np.array([0, 0, 1, 1, 1, 2])
# q0: pid 1, cam 0.  Order g0 g1 g2 g3 g4 g5; g0 (pid 1, cam 0) is removed.
#   kept: g1(2) g2(1*) g3(3) g4(2) g5(1*) -> hits at ranks 2 and 5
#   AP = (1/2 + 2/5) / 2 = 0.45, first hit rank 2
# q1: pid 2, cam 1.  Order g4 g3 g2 g1 g0 g5; g4 (pid 2, cam 1) is removed.
#   kept: g3(3) g2(1) g1(2*) g0(1) g5(1) -> hit at rank 3
#   AP = 1/3, first hit rank 3
Q_PIDS = np.array([1, 2])
Q_CAMS = np.array([0, 1])
DIST = np.array(
    [
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.6],
    ]
)
MAP = (0.45 + 1 / 3) / 2 * 100


def test_hand_worked_case():
    out = evaluate(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    assert set(out) == {"mAP", "rank1", "rank5", "rank10"}
    assert out["mAP"] == pytest.approx(MAP)
    assert out["rank1"] == pytest.approx(0.0)
    assert out["rank5"] == pytest.approx(100.0)
    assert out["rank10"] == pytest.approx(100.0)
    assert all(isinstance(v, float) for v in out.values())


def test_custom_topk():
    out = evaluate(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, topk=(1, 2, 3))
    assert set(out) == {"mAP", "rank1", "rank2", "rank3"}
    assert out["rank2"] == pytest.approx(50.0)  # only q0 has its first hit within 2
    assert out["rank3"] == pytest.approx(100.0)


def test_queries_without_valid_match_are_skipped():
    # q2: pid 4 is absent from the gallery. q3: pid 3, cam 1 -> its only match g3 is
    # in the same camera and removed. Both are skipped; the metrics are unchanged.
    dist = np.vstack([DIST, np.linspace(0, 1, 6), np.linspace(1, 0, 6)])
    out = evaluate(dist, np.array([1, 2, 4, 3]), G_PIDS, np.array([0, 1, 0, 1]), G_CAMS)
    assert out["mAP"] == pytest.approx(MAP)
    assert out["rank1"] == pytest.approx(0.0)


def test_same_pid_same_camera_is_ignored_not_counted_as_miss():
    # The same-camera duplicate at distance 0 would be a rank-1 hit if kept; removed,
    # the cross-camera match becomes rank 1 (it is not demoted to rank 2).
    dist = np.array([[0.0, 0.5, 0.9]])
    out = evaluate(dist, [7], [7, 7, 8], [0], [0, 1, 1])
    assert out["rank1"] == pytest.approx(100.0)
    assert out["mAP"] == pytest.approx(100.0)


def test_ties_keep_gallery_order():
    dist = np.array([[0.5, 0.5]])
    hit_first = evaluate(dist, [1], [1, 2], [0], [1, 1])
    hit_second = evaluate(dist, [1], [2, 1], [0], [1, 1])
    assert hit_first["rank1"] == pytest.approx(100.0)
    assert hit_second["rank1"] == pytest.approx(0.0)
    assert hit_second["mAP"] == pytest.approx(50.0)


def test_torch_input_matches_numpy():
    out_np = evaluate(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    out_t = evaluate(
        torch.tensor(DIST, dtype=torch.float32),
        torch.tensor(Q_PIDS),
        torch.tensor(G_PIDS),
        torch.tensor(Q_CAMS),
        torch.tensor(G_CAMS),
    )
    assert out_t == pytest.approx(out_np)
    # Unsorted labels in every role and several chunks: DIST's query pids and cameras are in order.
    rng = np.random.default_rng(1)
    dist, qp, gp = rng.random((23, 40)), rng.integers(0, 6, 23), rng.integers(0, 6, 40)
    qc, gc = rng.integers(0, 3, 23), rng.integers(0, 3, 40)
    tensors = [torch.from_numpy(a) for a in (dist, qp, gp, qc, gc)]
    assert evaluate(*tensors) == pytest.approx(_loop_reference(dist, qp, gp, qc, gc, (1, 5, 10)))


def test_labels_of_any_numpy_kind_and_strided_distances():
    """Pids and cameras are compared for equality only, so string cameras and small unsigned pids
    score as integers do; a reversed or strided distance array is read as it reads."""
    expected = evaluate(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    cams = np.array(["a", "b", "c"])
    assert evaluate(DIST, Q_PIDS.astype(np.uint16), G_PIDS.astype(np.uint16), cams[Q_CAMS], cams[G_CAMS]) == expected
    reversed_columns = np.ascontiguousarray(DIST[:, ::-1])[:, ::-1]  # DIST's values, negative column stride
    assert evaluate(reversed_columns, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS) == expected
    wide = np.repeat(DIST, 2, axis=1)[:, ::2]  # strided view
    assert evaluate(wide, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS) == expected


def _loop_reference(dist, qp, gp, qc, gc, ks):
    aps, firsts = [], []
    for i in range(dist.shape[0]):
        order = np.argsort(dist[i], kind="stable")
        kept = [j for j in order if not (gp[j] == qp[i] and gc[j] == qc[i])]
        good = [gp[j] == qp[i] for j in kept]
        if not any(good):
            continue
        hits, prec = 0, []
        for r, g in enumerate(good, start=1):
            if g:
                hits += 1
                prec.append(hits / r)
        aps.append(np.mean(prec))
        firsts.append(good.index(True) + 1)
    out = {"mAP": 100 * np.mean(aps)}
    for k in ks:
        out[f"rank{k}"] = 100 * np.mean(np.array(firsts) <= k)
    return out


def test_random_against_loop_reference_with_tiny_chunks(monkeypatch):
    rng = np.random.default_rng(0)
    nq, ng = 23, 40
    dist = rng.random((nq, ng))
    qp, gp = rng.integers(0, 6, nq), rng.integers(0, 6, ng)
    qc, gc = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    ref = _loop_reference(dist, qp, gp, qc, gc, (1, 5, 10))
    assert evaluate(dist, qp, gp, qc, gc) == pytest.approx(ref)
    monkeypatch.setattr(evaluation, "MAX_CHUNK_ELEMENTS", 1)
    assert evaluate(dist, qp, gp, qc, gc) == pytest.approx(ref)


def test_errors():
    with pytest.raises(ValueError, match="rows"):
        evaluate(DIST, [1], G_PIDS, [0], G_CAMS)
    with pytest.raises(ValueError, match="columns"):
        evaluate(DIST, Q_PIDS, G_PIDS[:5], Q_CAMS, G_CAMS[:5])
    with pytest.raises(ValueError, match="2-D"):
        evaluate(DIST[0], [1], G_PIDS, [0], G_CAMS)
    with pytest.raises(ValueError, match="no query has a valid match"):
        evaluate(DIST, [9, 9], G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match="topk"):
        evaluate(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, topk=(0,))


@pytest.mark.parametrize("row", [0, 1, 2])
def test_nan_anywhere_is_an_error_also_in_a_later_chunk(monkeypatch, row):
    """In the first, a middle or the last chunk: a flag that kept only the last chunk's (or the
    first chunk's) finding would pass a NaN in the last row alone."""
    monkeypatch.setattr(evaluation, "MAX_CHUNK_ELEMENTS", 4)  # one query row per chunk
    dist = np.random.default_rng(0).random((3, 4))
    dist[row, 1] = np.nan
    with pytest.raises(ValueError, match="distmat contains NaN"):
        evaluate(dist, np.array([1, 2, 3]), np.array([1, 2, 3, 4]), np.ones(3), np.full(4, 2))
