"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) of one square distance matrix.

Semantics follow the IICS reference use: every column of the input is min-max scaled
to [0, 1] and the result transposed (``D = d'^T``); all steps then work on ``D``.
Sparse encodings V are kept as row-sorted COO triplets; the Jaccard min-sum gathers
only each row's non-zero columns, so the work is ``O(n^2 * nnz_per_row)``, not ``n^3``.
"""

from __future__ import annotations

import numpy as np
import torch

from iics.arrays import as_tensor

# Upper bound on the elements of one temporary (per device type). Tests may lower it.
MAX_CHUNK_ELEMENTS = {"cpu": 1 << 22, "cuda": 1 << 27}


def _budget(device: torch.device) -> int:
    return MAX_CHUNK_ELEMENTS.get(device.type, MAX_CHUNK_ELEMENTS["cpu"])


def _row_chunks(n: int, per_row: int, device: torch.device):
    step = max(1, _budget(device) // max(1, per_row))
    for s in range(0, n, step):
        yield s, min(n, s + step)


def _rescaled_transpose(d: torch.Tensor) -> torch.Tensor:
    """Return ``D`` (float32, new memory): columns of ``d`` scaled to [0, 1], transposed."""
    n = d.shape[0]
    D = torch.empty((n, n), dtype=torch.float32, device=d.device)
    D.copy_(d.T)
    mn = D.amin(dim=1, keepdim=True)  # NaN propagates, so this also checks finiteness
    mx = D.amax(dim=1, keepdim=True)
    if not (torch.isfinite(mn).all() and torch.isfinite(mx).all()):
        raise ValueError("dist must contain only finite values")
    rng = mx - mn
    rng = torch.where(rng > 0, rng, torch.ones_like(rng))
    return D.sub_(mn).div_(rng)


def _initial_rank(D: torch.Tensor, K: int) -> torch.Tensor:
    """First ``K`` columns of a stable ascending argsort of each row of ``D``."""
    n = D.shape[0]
    out = torch.empty((n, K), dtype=torch.long, device=D.device)
    for s, e in _row_chunks(n, n, D.device):
        block = D[s:e]
        if K >= n:
            out[s:e] = torch.sort(block, dim=1, stable=True).indices[:, :K]
            continue
        vals, idx = torch.topk(block, K + 1, dim=1, largest=False, sorted=True)
        # Re-order the candidates by (value, index): stable order among ties.
        o = idx.argsort(dim=1)
        idx, vals = idx.gather(1, o), vals.gather(1, o)
        o = torch.sort(vals, dim=1, stable=True).indices
        idx, vals = idx.gather(1, o), vals.gather(1, o)
        out[s:e] = idx[:, :K]
        # A tie across the K-th boundary may hide a lower index outside the candidates.
        tied = (vals[:, K - 1] == vals[:, K]).nonzero(as_tuple=True)[0]
        if len(tied):
            out[s + tied] = torch.sort(block[tied], dim=1, stable=True).indices[:, :K]
    return out


def _reciprocal_mask(nbrs: torch.Tensor) -> torch.Tensor:
    """``mask[i, a]``: ``i`` is among the neighbours of ``nbrs[i, a]`` (k-reciprocal)."""
    n, k = nbrs.shape
    mask = torch.empty((n, k), dtype=torch.bool, device=nbrs.device)
    for s, e in _row_chunks(n, k * k, nbrs.device):
        back = nbrs[nbrs[s:e]]  # (B, k, k)
        me = torch.arange(s, e, device=nbrs.device).view(-1, 1, 1)
        mask[s:e] = (back == me).any(dim=-1)
    return mask


def _expanded_weights(D, rank, k1: int, kh: int):
    """COO triplets (rows, cols, vals) of the normalised weights V over the expanded sets E(i)."""
    n = D.shape[0]
    dev = D.device
    nb = rank[:, : k1 + 1]
    nbh = rank[:, : kh + 1]
    recip = _reciprocal_mask(nb)
    recip_h = _reciprocal_mask(nbh)
    rows_l, cols_l, vals_l = [], [], []
    per_row = max(n + 1, (k1 + 1) * (kh + 1) * 4)
    for s, e in _row_chunks(n, per_row, dev):
        B = e - s
        Ni, Ri = nb[s:e], recip[s:e]
        mask = torch.zeros((B, n + 1), dtype=torch.bool, device=dev)  # column n is a sink
        mask.scatter_(1, torch.where(Ri, Ni, n), True)
        mask[:, n] = False
        Hc = nbh[Ni]  # (B, k1+1, kh+1): half-size neighbours of each candidate
        Mc = recip_h[Ni]  # membership of those in the candidate's reciprocal set Rh(c)
        in_r = mask.gather(1, Hc.reshape(B, -1)).view_as(Hc) & Mc
        accept = Ri & (3 * in_r.sum(-1) > 2 * Mc.sum(-1))  # |Rh(c) & R(i)| > 2/3 |Rh(c)|
        sel = Mc & accept.unsqueeze(-1)
        mask.scatter_(1, torch.where(sel, Hc, n).reshape(B, -1), True)
        r, c = mask[:, :n].nonzero(as_tuple=True)
        w = torch.exp(-D[s + r, c])
        total = torch.zeros(B, dtype=w.dtype, device=dev).index_add_(0, r, w)
        rows_l.append(r + s)
        cols_l.append(c)
        vals_l.append(w / total[r])
    return torch.cat(rows_l), torch.cat(cols_l), torch.cat(vals_l)


def _padded(rows, cols, vals, n: int):
    """Row-sorted COO -> padded ``(n, L)`` index/value arrays (padding: index 0, value 0)."""
    counts = torch.bincount(rows, minlength=n)
    L = max(1, int(counts.max()))
    start = torch.cumsum(counts, 0) - counts
    pos = torch.arange(len(rows), device=rows.device) - start[rows]
    idx = torch.zeros((n, L), dtype=torch.long, device=rows.device)
    val = torch.zeros((n, L), dtype=vals.dtype, device=rows.device)
    idx[rows, pos] = cols
    val[rows, pos] = vals
    return idx, val


def _query_expand(rows, cols, vals, rank, k2: int, n: int):
    """Average each row of V with its ``k2 - 1`` nearest rows; returns COO and dense ``V^T``."""
    dev = vals.device
    VT = torch.zeros((n, n), dtype=torch.float32, device=dev)
    if k2 == 1:
        VT[cols, rows] = vals
        return rows, cols, vals, VT
    idx, val = _padded(rows, cols, vals, n)
    rows_l, cols_l, vals_l = [], [], []
    for s, e in _row_chunks(n, max(n, k2 * idx.shape[1]), dev):
        B = e - s
        nbrs = rank[s:e, :k2]
        acc = torch.zeros((B, n), dtype=torch.float32, device=dev)
        acc.scatter_add_(1, idx[nbrs].reshape(B, -1), val[nbrs].reshape(B, -1))
        acc.div_(k2)
        VT[:, s:e] = acc.T
        r, c = (acc > 0).nonzero(as_tuple=True)
        rows_l.append(r + s)
        cols_l.append(c)
        vals_l.append(acc[r, c])
    return torch.cat(rows_l), torch.cat(cols_l), torch.cat(vals_l), VT


def _jaccard_combine(D, rows, cols, vals, VT, lambda_value: float) -> torch.Tensor:
    """Overwrite ``D`` with ``(1 - lambda) * Jaccard(V) + lambda * D`` row chunk by row chunk."""
    n = D.shape[0]
    counts = torch.bincount(rows, minlength=n)
    ptr = np.concatenate([[0], torch.cumsum(counts, 0).cpu().numpy()])
    cap = max(1, _budget(D.device) // n)  # COO entries per chunk
    s = 0
    while s < n:
        e = int(np.searchsorted(ptr, ptr[s] + cap, side="right")) - 1
        e = min(n, max(s + 1, e))
        a, b = int(ptr[s]), int(ptr[e])
        g = VT[cols[a:b]]  # (T, n): column k of V for each non-zero (i, k)
        torch.minimum(g, vals[a:b].unsqueeze(1), out=g)
        smin = torch.zeros((e - s, n), dtype=torch.float32, device=D.device)
        smin.index_add_(0, rows[a:b] - s, g)
        # The reference sets negative Jaccard distances to 0: where two rows of V coincide (exact
        # duplicates, or the same k2 neighbours after query expansion) the min-sum can exceed 1
        # by rounding, and 1 - s / (2 - s) comes out at about -1e-7.
        jac = (1.0 - smin / (2.0 - smin)).clamp_(min=0.0)
        D[s:e].mul_(lambda_value).add_(jac, alpha=1.0 - lambda_value)
        s = e
    return D


def k_reciprocal(dist, k1: int = 20, k2: int = 6, lambda_value: float = 0.3):
    """Return the k-reciprocal re-ranked ``n x n`` distance matrix (float32).

    numpy in -> numpy out; torch in -> torch out on the same device. ``k1`` is capped
    at ``n - 1`` and ``k2`` at ``n``; the half-size neighbourhood uses
    ``round(k1 / 2)`` (half to even, after capping). ``k2 == 1`` disables query
    expansion. A row with an empty reciprocal set gets an all-zero V row (Jaccard 1). Jaccard
    distances are clamped at 0, as in the reference.
    """
    is_torch = isinstance(dist, torch.Tensor)
    d = as_tensor(dist)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"dist must be a square 2-D matrix, got shape {tuple(d.shape)}")
    n = d.shape[0]
    if n < 2:
        raise ValueError(f"dist must be at least 2 x 2, got {n} x {n}")
    k1, k2 = int(k1), int(k2)
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    k1, k2 = min(k1, n - 1), min(k2, n)
    kh = int(np.around(k1 / 2.0))
    lam = float(lambda_value)
    with torch.no_grad():
        D = _rescaled_transpose(d)
        rank = _initial_rank(D, max(k1 + 1, k2))
        rows, cols, vals = _expanded_weights(D, rank, k1, kh)
        rows, cols, vals, VT = _query_expand(rows, cols, vals, rank, k2, n)
        del rank
        out = _jaccard_combine(D, rows, cols, vals, VT, lam)
    return out if is_torch else out.numpy()


def dense_bytes(n: int) -> int:
    """Bytes the n x n float32 matrices of re-ranking ``n`` images take together: the input
    distances, their rescaled copy (which becomes the output) and the dense ``V^T``. The chunked
    temporaries come on top (at most a few ``MAX_CHUNK_ELEMENTS`` each)."""
    return 3 * 4 * n * n


def query_gallery(dist, num_query: int, k1: int = 20, k2: int = 6, lambda_value: float = 0.3):
    """The query x gallery block of ``k_reciprocal(dist)``, a new array or tensor.

    ``dist`` is the square distance matrix of the queries followed by the gallery images: at
    evaluation, re-ranking treats both as one set, so a gallery image's neighbours include the
    queries (Zhong et al.'s protocol).
    """
    n = dist.shape[0]
    if not 0 < num_query < n:
        raise ValueError(f"num_query must leave at least one query and one gallery image, got {num_query} of {n}")
    reranked = k_reciprocal(dist, k1, k2, lambda_value)
    block = reranked[:num_query, num_query:]
    return block.clone() if isinstance(block, torch.Tensor) else block.copy()
