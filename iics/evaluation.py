"""Re-ID retrieval metrics: mean average precision and CMC ranks."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

# Upper bound on (queries in a chunk) x (gallery size); bounds the temporary tensors (about
# 40 bytes an element: at MSMT17's 82,161 gallery images a chunk is 102 queries, 0.3 GB).
MAX_CHUNK_ELEMENTS = 1 << 23


def _as_tensor(x, device: torch.device | None = None) -> torch.Tensor:
    """A tensor of `x` (tensor, NumPy array or list) on `device`; a read-only array is copied
    (torch does not wrap read-only memory), a writable one is shared."""
    if not isinstance(x, torch.Tensor):
        array = np.asarray(x)
        x = torch.from_numpy(array if array.flags.writeable else array.copy())
    return x.detach().to(device) if device is not None else x.detach()


def evaluate(
    distmat,
    query_pids,
    gallery_pids,
    query_cams,
    gallery_cams,
    topk: Sequence[int] = (1, 5, 10),
) -> dict:
    """Return ``{"mAP", "rank{k}" for k in topk}`` in percent.

    ``distmat`` is ``(num_query, num_gallery)`` (numpy or torch); the ranking runs where it is
    (a CUDA tensor is ranked on its device, with one copy of the totals back at the end).
    Gallery items with the query's pid and camera are removed before ranking; queries left
    without a correct match are skipped. AP is non-interpolated (mean precision at each hit);
    rank-k is the fraction of kept queries whose first hit is in the top k. Ties keep gallery
    order.
    """
    dist = _as_tensor(distmat)
    device = dist.device
    qp, gp, qc, gc = (_as_tensor(x, device).reshape(-1) for x in (query_pids, gallery_pids, query_cams, gallery_cams))
    if dist.ndim != 2:
        raise ValueError(f"distmat must be 2-D, got shape {tuple(dist.shape)}")
    nq, ng = dist.shape
    if nq == 0 or ng == 0:
        raise ValueError(f"distmat must be non-empty, got shape {tuple(dist.shape)}")
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

    # Totals over the queries with a correct match, kept on the device: no wait per chunk.
    has_nan = torch.zeros((), dtype=torch.bool, device=device)
    ap_sum = torch.zeros((), dtype=torch.float64, device=device)
    answered = torch.zeros((), dtype=torch.int64, device=device)
    within = torch.zeros(len(ks), dtype=torch.int64, device=device)
    limits = torch.tensor(ks, device=device)
    step = max(1, MAX_CHUNK_ELEMENTS // ng)
    for s in range(0, nq, step):
        chunk = dist[s:s + step]
        has_nan |= chunk.isnan().any()  # chunk by chunk: a whole-matrix mask would be nq x ng bytes
        order = torch.sort(chunk, dim=1, stable=True).indices
        same_pid = gp[order] == qp[s:s + step, None]
        keep = ~(same_pid & (gc[order] == qc[s:s + step, None]))
        good = same_pid & keep
        position = keep.cumsum(dim=1)  # 1-based rank among kept items
        hits = good.cumsum(dim=1)
        relevant = hits[:, -1]
        answers = relevant > 0
        precision = torch.where(good, hits / position.clamp(min=1).double(), 0.0)
        ap_sum += (precision.sum(dim=1) / relevant.clamp(min=1)).sum()  # 0 for a query without a match
        answered += answers.sum()
        first_rank = position.gather(1, good.byte().argmax(dim=1, keepdim=True))  # argmax: the first hit
        within += ((first_rank <= limits) & answers[:, None]).sum(dim=0)

    if has_nan:
        raise ValueError("distmat contains NaN")
    count = int(answered)
    if count == 0:
        raise ValueError("no query has a valid match in the gallery (after same-pid, same-camera removal)")
    out = {"mAP": float(ap_sum) / count * 100.0}
    for k, hits_within_k in zip(ks, within.tolist()):
        out[f"rank{k}"] = hits_within_k / count * 100.0
    return out
