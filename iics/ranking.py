"""Top-k gallery matches of chosen queries, under the same rule as the evaluation."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Ranking:
    """For each chosen query (row): its position in the query set, the gallery positions of its
    top-k matches, their distances, and whether each match is the same identity."""

    queries: np.ndarray  # (Q,)
    gallery: np.ndarray  # (Q, k)
    distances: np.ndarray  # (Q, k)
    correct: np.ndarray  # (Q, k) bool


def choose_queries(query_pids: np.ndarray, query_cams: np.ndarray, gallery_pids: np.ndarray,
                   gallery_cams: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` queries drawn at random among those that have a correct match in another camera
    (the queries the evaluation scores), sorted."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    gallery = pd.DataFrame({"pid": np.asarray(gallery_pids), "cam": np.asarray(gallery_cams)})
    query = pd.DataFrame({"pid": np.asarray(query_pids), "cam": np.asarray(query_cams)})
    # a match in another camera exists iff the gallery holds more images of the query's identity
    # than the query's camera alone contributes
    of_identity = gallery.groupby("pid").size().reindex(query["pid"], fill_value=0).to_numpy()
    of_view = gallery.groupby(["pid", "cam"]).size().reindex(pd.MultiIndex.from_frame(query), fill_value=0).to_numpy()
    candidates = np.flatnonzero(of_identity > of_view)
    if len(candidates) == 0:
        raise ValueError("no query has a match of the same identity in another camera")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=min(count, len(candidates)), replace=False))


def rank_gallery(distances: np.ndarray, queries: np.ndarray, query_pids: np.ndarray, query_cams: np.ndarray,
                 gallery_pids: np.ndarray, gallery_cams: np.ndarray, top_k: int) -> Ranking:
    """Top-`top_k` gallery items for each of `queries`, nearest first, from the full
    (num_query, num_gallery) `distances`. As in `iics.evaluation.evaluate`, gallery images of the
    query's identity taken by the query's camera are left out, and ties keep gallery order. When
    fewer gallery images than `top_k` remain for some query, every row is cut to that number."""
    distances = np.asarray(distances)
    queries = np.asarray(queries, dtype=np.int64)
    gallery_pids, gallery_cams = np.asarray(gallery_pids), np.asarray(gallery_cams)
    rows = []
    for q in queries:
        same_view = (gallery_pids == query_pids[q]) & (gallery_cams == query_cams[q])
        order = np.argsort(distances[q], kind="stable")
        rows.append(order[~same_view[order]][:top_k])
    k = min(len(order) for order in rows)
    gallery = np.array([order[:k] for order in rows], dtype=np.int64).reshape(len(queries), k)
    correct = gallery_pids[gallery] == np.asarray(query_pids)[queries][:, None]
    return Ranking(queries, gallery, np.take_along_axis(distances[queries], gallery, axis=1), correct)
