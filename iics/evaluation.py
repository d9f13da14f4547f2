"""Re-ID retrieval metrics: mean average precision and CMC ranks."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

# Upper bound on (queries in a chunk) x (gallery size); bounds the temporary arrays.
MAX_CHUNK_ELEMENTS = 1 << 23


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def evaluate(
    distmat,
    query_pids,
    gallery_pids,
    query_cams,
    gallery_cams,
    topk: Sequence[int] = (1, 5, 10),
) -> dict:
    """Return ``{"mAP", "rank{k}" for k in topk}`` in percent.

    ``distmat`` is ``(num_query, num_gallery)`` (numpy or torch). Gallery items with the
    query's pid and camera are removed before ranking; queries left without a correct
    match are skipped. AP is non-interpolated (mean precision at each hit); rank-k is the
    fraction of kept queries whose first hit is in the top k. Ties keep gallery order.
    """
    dist = _as_numpy(distmat)
    qp = _as_numpy(query_pids).reshape(-1)
    gp = _as_numpy(gallery_pids).reshape(-1)
    qc = _as_numpy(query_cams).reshape(-1)
    gc = _as_numpy(gallery_cams).reshape(-1)
    if dist.ndim != 2:
        raise ValueError(f"distmat must be 2-D, got shape {dist.shape}")
    nq, ng = dist.shape
    if nq == 0 or ng == 0:
        raise ValueError(f"distmat must be non-empty, got shape {dist.shape}")
    if len(qp) != nq or len(qc) != nq:
        raise ValueError(
            f"query_pids ({len(qp)}) and query_cams ({len(qc)}) must match distmat rows ({nq})"
        )
    if len(gp) != ng or len(gc) != ng:
        raise ValueError(
            f"gallery_pids ({len(gp)}) and gallery_cams ({len(gc)}) must match distmat columns ({ng})"
        )
    ks = [int(k) for k in topk]
    if any(k < 1 for k in ks):
        raise ValueError(f"topk values must be >= 1, got {tuple(topk)}")

    aps, first_ranks = [], []
    step = max(1, MAX_CHUNK_ELEMENTS // ng)
    for s in range(0, nq, step):
        e = min(nq, s + step)
        if np.isnan(dist[s:e]).any():  # chunk by chunk: a whole-matrix mask would be nq x ng bytes
            raise ValueError("distmat contains NaN")
        order = np.argsort(dist[s:e], axis=1, kind="stable")
        same_pid = gp[order] == qp[s:e, None]
        keep = ~(same_pid & (gc[order] == qc[s:e, None]))
        good = same_pid & keep
        n_rel = good.sum(axis=1)
        valid = n_rel > 0
        if not valid.any():
            continue
        good, keep, n_rel = good[valid], keep[valid], n_rel[valid]
        pos = np.cumsum(keep, axis=1)  # 1-based rank among kept items
        hits = np.cumsum(good, axis=1)
        prec = np.where(good, hits / np.maximum(pos, 1), 0.0)
        aps.append(prec.sum(axis=1) / n_rel)
        first = np.argmax(good, axis=1)
        first_ranks.append(pos[np.arange(len(first)), first])

    if not aps:
        raise ValueError("no query has a valid match in the gallery (after same-pid, same-camera removal)")
    ap = np.concatenate(aps)
    first_rank = np.concatenate(first_ranks)
    out = {"mAP": float(ap.mean() * 100.0)}
    for k in ks:
        out[f"rank{k}"] = float((first_rank <= k).mean() * 100.0)
    return out
