"""Inter-camera affinity: soft Jaccard similarity of class probabilities."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from iics.arrays import as_tensor
from iics.settings import check_at_least

# Upper bound on the elements of one (rows x n) block of the result, per device type.
MAX_CHUNK_ELEMENTS = {"cpu": 1 << 23, "cuda": 1 << 28}


def _float(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def jaccard_similarity(probs):
    """Soft Jaccard of the rows: ``sum_k min(p_ik, p_jk) / sum_k max(p_ik, p_jk)`` (0 if 0/0).

    ``probs`` is ``n x c`` and non-negative. numpy in -> numpy out, torch in -> torch out.
    ``sum min = (sum p_i + sum p_j - sum |p_i - p_j|) / 2`` with the L1 distances from
    ``torch.cdist`` (a fused kernel: no rows x n x c temporary), and
    ``sum max = sum p_i + sum p_j - sum min``. Computed in row chunks of at least 16 per matrix,
    each against its own and the later rows only: the earlier columns are the mirror image of
    rows already done (the result is exactly symmetric), so the distances cost about half.
    """
    is_torch = isinstance(probs, torch.Tensor)
    p = _float(as_tensor(probs))
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D (n x classes), got shape {tuple(p.shape)}")
    if not torch.isfinite(p).all():
        raise ValueError("probs must contain only finite values")
    if (p < 0).any():
        raise ValueError("probs must be non-negative")
    n, c = p.shape
    out = torch.empty((n, n), dtype=p.dtype, device=p.device)
    total = p.sum(dim=1)
    budget = MAX_CHUNK_ELEMENTS.get(p.device.type, MAX_CHUNK_ELEMENTS["cpu"])
    step = max(1, min(budget // max(1, n), -(-n // 16)))
    with torch.no_grad():
        for s in range(0, n, step):
            e = min(n, s + step)
            # In place, and the same roundings as (both - l1) / 2, both - smin and smin / smax:
            # two (rows x n) floats and a mask instead of a temporary per step.
            both = total[s:e, None] + total[None, s:]
            smin = torch.cdist(p[s:e], p[s:], p=1.0).neg_().add_(both).div_(2)
            smax = both.sub_(smin)
            empty = smax <= 0
            block = smin.div_(smax.masked_fill_(empty, 1.0)).masked_fill_(empty, 0.0).clamp_(0.0, 1.0)
            out[s:e, s:] = block
            out[e:, s:e] = block[:, e - s:].T
    return out if is_torch else out.numpy()


def inter_camera_distance(features, probs, cams, mu: float):
    """``1 - cos(f_i, f_j) - mu * J_ij`` for pairs from different cameras, ``1 - cos`` otherwise.

    ``features`` (n x d) are L2-normalised here; ``J`` is :func:`jaccard_similarity` of
    ``probs`` (n x c). Output follows the type and device of ``features``.
    """
    is_torch = isinstance(features, torch.Tensor)
    f = _float(as_tensor(features))
    if f.ndim != 2:
        raise ValueError(f"features must be 2-D, got shape {tuple(f.shape)}")
    n = f.shape[0]
    p = as_tensor(probs).to(f.device)
    c = as_tensor(cams).to(f.device).reshape(-1)
    if p.ndim != 2 or p.shape[0] != n:
        raise ValueError(f"probs must have {n} rows, got shape {tuple(p.shape)}")
    if c.shape[0] != n:
        raise ValueError(f"cams must have {n} entries, got {c.shape[0]}")
    with torch.no_grad():
        f = F.normalize(f, dim=1)
        dist = (f @ f.T).neg_().add_(1.0)  # 1 - cos in place: the same bits, one n x n matrix fewer
        jac = jaccard_similarity(p).to(dist.dtype)
        jac.masked_fill_(c[:, None] == c[None, :], 0.0)
        dist.sub_(jac, alpha=float(mu))
    return dist if is_torch else dist.numpy()


def mu_schedule(mu: float, t: float, T: float) -> float:
    """Decayed Jaccard weight ``mu * (1 - t / T) ** 0.6`` for step ``0 <= t <= T`` (``mu >= 0``)."""
    check_at_least("mu", mu, 0)
    if T <= 0:
        raise ValueError(f"T must be positive, got {T}")
    if not 0 <= t <= T:
        raise ValueError(f"t must be in [0, T={T}], got {t}")
    return float(mu) * (1.0 - float(t) / float(T)) ** 0.6
