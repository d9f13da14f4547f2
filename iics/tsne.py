"""Two-dimensional t-SNE maps of re-ID features, for pictures of how training separates people."""
from __future__ import annotations

import numpy as np
from sklearn.manifold import TSNE


def sample_for_tsne(pids: np.ndarray, num_identities: int, max_images: int, seed: int) -> np.ndarray:
    """Row positions to draw: every image of `num_identities` identities chosen at random among the
    images that have one (pid >= 0; unlabelled images are left out), or, when none has, `max_images`
    images chosen at random. Sorted."""
    pids = np.asarray(pids)
    if num_identities < 1 or max_images < 1:
        raise ValueError(f"num_identities and max_images must be >= 1, got {num_identities}, {max_images}")
    rng = np.random.default_rng(seed)
    if (pids >= 0).any():
        identities = np.unique(pids[pids >= 0])
        chosen = rng.choice(identities, size=min(num_identities, len(identities)), replace=False)
        return np.flatnonzero(np.isin(pids, chosen))
    return np.sort(rng.choice(len(pids), size=min(max_images, len(pids)), replace=False))


def tsne_2d(features: np.ndarray, seed: int) -> np.ndarray:
    """(N, D) features -> (N, 2) t-SNE coordinates on cosine distance (PCA start, fixed seed)."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) < 3:
        raise ValueError(f"t-SNE needs an (N, D) array with N >= 3, got shape {features.shape}")
    perplexity = min(30.0, (len(features) - 1) / 3.0)
    tsne = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed)
    return tsne.fit_transform(features).astype(np.float32)
