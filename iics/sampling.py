"""Batch samplers for the two training stages."""
from __future__ import annotations

import numpy as np

from iics.settings import check_count


def smallest_camera(camids: np.ndarray) -> tuple[int, int]:
    """(camera id, number of images) of the camera with the fewest images (the lowest id on a
    tie): it sets the number of intra-camera iterations per epoch."""
    cameras, counts = np.unique(np.asarray(camids), return_counts=True)
    if len(cameras) == 0:
        raise ValueError("no images")
    smallest = int(np.argmin(counts))
    return int(cameras[smallest]), int(counts[smallest])


def per_camera_batches(camids: np.ndarray, batch_per_camera: int, rng: np.random.Generator) -> list[list[np.ndarray]]:
    """One epoch of intra-camera batches.

    Each iteration holds `batch_per_camera` shuffled image indices from every camera; the epoch
    ends when the smallest camera runs out (incomplete batches are dropped).
    Returns a list of iterations, each a list of index arrays in camera order (sorted camera ids).
    """
    check_count("batch_per_camera", batch_per_camera)
    _, fewest = smallest_camera(camids)
    iterations = fewest // batch_per_camera
    if iterations == 0:
        raise ValueError(
            f"every camera needs at least {batch_per_camera} training images for one intra-camera batch; "
            f"smallest camera has {fewest}"
        )
    shuffled = [rng.permutation(np.flatnonzero(camids == c)) for c in np.unique(camids)]
    return [
        [s[i * batch_per_camera:(i + 1) * batch_per_camera] for s in shuffled]
        for i in range(iterations)
    ]


def pk_batches(labels: np.ndarray, ids_per_batch: int, images_per_id: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of PK batches: `ids_per_batch` pseudo-identities x `images_per_id` images each.

    As the reference's identity sampler draws them: each identity's images are shuffled and cut
    into groups of `images_per_id` (the remainder is left out; an identity with fewer images
    makes one group, drawn with replacement). While at least `ids_per_batch` identities have a
    group left, a batch takes the next group of `ids_per_batch` of them, chosen at random. So an
    epoch covers nearly every image once, and a large identity appears in many batches.
    """
    check_count("ids_per_batch", ids_per_batch)
    check_count("images_per_id", images_per_id)
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    ids, starts = np.unique(labels[order], return_index=True)
    if len(ids) < ids_per_batch:
        raise ValueError(
            f"PK sampling needs at least {ids_per_batch} pseudo-identities, got {len(ids)}: "
            "the clustering merged too much (lower the clustering threshold) or ids_per_batch is too large"
        )
    groups = []  # per identity: (groups, images_per_id) image indices
    for members in np.split(order, starts[1:]):
        if len(members) < images_per_id:
            members = rng.choice(members, size=images_per_id, replace=True)
        members = rng.permutation(members)
        usable = len(members) // images_per_id * images_per_id
        groups.append(members[:usable].reshape(-1, images_per_id))
    left = np.array([len(g) for g in groups])
    batches = []
    while np.count_nonzero(left) >= ids_per_batch:
        chosen = rng.choice(np.flatnonzero(left), size=ids_per_batch, replace=False)
        batches.append(np.concatenate([groups[i][len(groups[i]) - left[i]] for i in chosen]))
        left[chosen] -= 1
    return batches
