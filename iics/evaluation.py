"""Re-ID retrieval metrics: mean average precision and CMC ranks."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from iics.arrays import as_tensor

# Upper bound on (queries in a chunk) x (gallery size); bounds the temporary tensors (about
# 60 bytes an element: at MSMT17's 82,161 gallery images a chunk is 102 queries, 0.5 GB).
MAX_CHUNK_ELEMENTS = 1 << 23


def _label_codes(query, gallery, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Query and gallery labels (pids or cameras) as int64 tensors on `device` that are equal
    exactly where the labels are: tensors as they are, anything else (NumPy arrays or lists of
    any dtype, strings included) by its position among the labels' distinct values."""
    if isinstance(query, torch.Tensor) and isinstance(gallery, torch.Tensor):
        return query.detach().reshape(-1).to(device), gallery.detach().reshape(-1).to(device)
    query = query.cpu().numpy() if isinstance(query, torch.Tensor) else np.asarray(query)
    gallery = gallery.cpu().numpy() if isinstance(gallery, torch.Tensor) else np.asarray(gallery)
    query, gallery = query.reshape(-1), gallery.reshape(-1)
    _, codes = np.unique(np.concatenate([query, gallery]), return_inverse=True)
    codes = torch.from_numpy(codes.reshape(-1).astype(np.int64)).to(device)
    return codes[:len(query)], codes[len(query):]


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
    (a CUDA tensor is ranked on its device, with one copy of the totals back at the end). Pids
    and cameras are compared for equality only: integers, or NumPy labels of any kind.
    Gallery items with the query's pid and camera are removed before ranking; queries left
    without a correct match are skipped. AP is non-interpolated (mean precision at each hit);
    rank-k is the fraction of kept queries whose first hit is in the top k. Ties keep gallery
    order.
    """
    dist = as_tensor(distmat)
    device = dist.device
    qp, gp = _label_codes(query_pids, gallery_pids, device)
    qc, gc = _label_codes(query_cams, gallery_cams, device)
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

    nan, ap_total, count, *within_k = torch.cat([has_nan.double()[None], ap_sum[None], answered.double()[None],
                                                 within.double()]).tolist()  # the one copy back
    if nan:
        raise ValueError("distmat contains NaN")
    if count == 0:
        raise ValueError("no query has a valid match in the gallery (after same-pid, same-camera removal)")
    out = {"mAP": ap_total / count * 100.0}
    for k, hits_within_k in zip(ks, within_k):
        out[f"rank{k}"] = hits_within_k / count * 100.0
    return out
