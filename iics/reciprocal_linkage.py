"""Average linkage on a torch device, by merging every reciprocal-nearest pair at once.

scipy's nearest-neighbour chain is a sequential loop over a condensed matrix on the host: at
MSMT17 scale (32,621 images) it is the one clustering step that cannot use the GPU. Average
linkage is reducible, so when two clusters are each other's nearest neighbours, merging them
never brings any other cluster closer to anything; every such pair can therefore be merged in
the same step, and the merges (pairs and heights) are those of the sequential algorithm. One step
is a row-wise minimum and two gathers over the active square matrix, and the number of active
clusters shrinks geometrically, so a full tree takes a few dozen steps of tensor operations
instead of n - 1 iterations of a Python or C loop.

Heights are computed in float64 with the same Lance-Williams update as scipy (the size-weighted
mean of the two merged rows), so they agree with scipy's to rounding; where two heights tie
exactly the order of those merges may differ.

Memory, besides the caller's input: at the start the mirrored copy in the input's dtype, a boolean
n x n mask and the float64 n x n distances. Then, in a step with ``a`` active clusters of which
``f`` reciprocal pairs merge (``f <= a / 2``), the row update first builds the ``f x a`` merged rows
in place of one gathered copy (with a second ``f x a`` gather beside it), then copies the
``(a - f) x a`` kept rows while the ``a x a`` distances still exist: at most ``2 a^2`` float64. The
column update holds less. The first step is the largest, ``2 n^2`` float64: 17 GB at 32,621
images (8.5 GB per n x n float64).
"""
from __future__ import annotations

import torch


def average_linkage_merges(
    dist: torch.Tensor, below: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The merges of average-linkage clustering of ``dist`` (upper triangle read), on its device.

    Returns ``(a, b, height)``: merge ``r`` joins the cluster holding leaf ``a[r]`` with the one
    holding leaf ``b[r]`` at ``height[r]`` (float64), in no particular order. Without ``below``
    the tree is complete (n - 1 merges); with it, only the merges of height ``< below`` are
    made, which are exactly the tree's merges below that height.
    """
    n = dist.shape[0]
    device = dist.device
    upper = torch.ones(n, n, dtype=torch.bool, device=device).triu_(diagonal=1)
    distances = torch.where(upper, dist, dist.T).to(torch.float64)  # the upper triangle, mirrored
    del upper
    sizes = torch.ones(n, dtype=torch.float64, device=device)
    leaf = torch.arange(n, device=device)  # a leaf inside each active cluster
    found_a, found_b, found_height = [], [], []
    while distances.shape[0] > 1:
        active = distances.shape[0]
        slot = torch.arange(active, device=device)
        distances.fill_diagonal_(float("inf"))
        nearest_distance, nearest = distances.min(dim=1)
        distances.fill_diagonal_(0.0)  # the weighted sums below would turn 0 * inf into NaN
        # One row of each reciprocal pair (the lower slot), optionally only below the cut.
        merging = (nearest[nearest] == slot) & (slot < nearest)
        if below is not None:
            merging &= nearest_distance < below
        first = slot[merging]
        if len(first) == 0:
            if below is None:  # the closest pair (lowest indices among ties) is always reciprocal
                raise RuntimeError("no reciprocal nearest pair among the remaining clusters")
            break  # every remaining merge is at `below` or higher
        second = nearest[first]
        found_a.append(leaf[first])
        found_b.append(leaf[second])
        found_height.append(nearest_distance[first])

        # Cluster second[i] joins first[i] (Lance-Williams: the size-weighted mean of the two
        # rows, then of the two columns); the `second` slots are dropped.
        merged_size = sizes[first] + sizes[second]
        weight_first = sizes[first] / merged_size
        weight_second = sizes[second] / merged_size
        keep = torch.ones(active, dtype=torch.bool, device=device)
        keep[second] = False
        kept = slot[keep]
        new_slot = torch.cumsum(keep, 0) - 1  # where each kept slot goes
        merged_rows = distances[first].mul_(weight_first[:, None])
        merged_rows.add_(distances[second].mul_(weight_second[:, None]))
        rows = distances[kept]
        del distances  # the largest matrix: free it before the column step allocates
        rows[new_slot[first]] = merged_rows
        del merged_rows
        merged_columns = rows[:, first].mul_(weight_first)
        merged_columns.add_(rows[:, second].mul_(weight_second))
        distances = rows[:, kept]
        del rows
        distances[:, new_slot[first]] = merged_columns
        del merged_columns
        # Between two clusters merged in this step the row and column updates round in different
        # orders, which leaves the matrix asymmetric by an ulp; every other entry is the same product
        # either way. Keep the upper triangle (the lower slot's row) of that block on both sides.
        merged = new_slot[first][:, None], new_slot[first][None, :]  # ascending slots
        block = distances[merged]
        distances[merged] = block.triu().add_(block.triu(1).T)
        del block
        sizes[first] = merged_size
        sizes, leaf = sizes[kept], leaf[kept]
    if not found_a:
        empty = torch.empty(0, dtype=torch.int64, device=device)
        return empty, empty, torch.empty(0, dtype=torch.float64, device=device)
    return torch.cat(found_a), torch.cat(found_b), torch.cat(found_height)
