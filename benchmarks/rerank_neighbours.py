"""Whether k-reciprocal re-ranking can help on a dataset: what each query's k1 nearest images in
query + gallery (itself left out) are, with a trained model of a finished run.

    python benchmarks/rerank_neighbours.py PROJECT ROUND            # e.g. . r04
    python benchmarks/rerank_neighbours.py PROJECT ROUND --k1 20

PROJECT is a project folder after `dvc repro` or `dvc exp run` (its params.yaml, the prepared
index and image cache of the configured dataset, runs/ROUND/model.pt). Re-ranking, as
`evaluate.rerank` runs it, treats queries and gallery as one set and rewards a query-gallery pair
for sharing neighbours. Where a query's nearest images are mostly other queries of its own
camera (query and gallery taken by different cameras, and features that still see the camera),
a query and its true gallery match share almost no neighbours, and re-ranking pushes the match
down. Prints one JSON line: the mean share of the k1 nearest that are queries, from the query's
own camera, and the same person, and how many same-person images each query has to find.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]
from measure import git_commit  # noqa: E402

from iics.checkpoint import load_backbone  # noqa: E402
from iics.features import cosine_distance, extract_features  # noqa: E402
from iics.image_cache import load_image_cache  # noqa: E402
from iics.index import read_index, split_rows  # noqa: E402
from iics.runtime import resolve_device  # noqa: E402


def neighbour_shares(dist: torch.Tensor, pids: np.ndarray, cams: np.ndarray, num_query: int, k1: int) -> dict:
    """Over the first `num_query` rows of the square query + gallery distance matrix `dist`: the
    mean share of each row's `k1` nearest other images that are queries, from the row's camera,
    and of its person; and the mean number of other images of its person in the set."""
    n = dist.shape[0]
    if not 0 < num_query < n or not 0 < k1 < n:
        raise ValueError(f"need 0 < num_query < {n} and 0 < k1 < {n}, got num_query={num_query}, k1={k1}")
    distances = dist[:num_query].clone()
    distances[torch.arange(num_query), torch.arange(num_query)] = float("inf")  # not its own neighbour
    nearest = distances.topk(k1, largest=False).indices.numpy()
    pid, cam = pids[:num_query, None], cams[:num_query, None]
    same_person = pids[None, :] == pid
    return {"k1": k1,
            "share_queries": float((nearest < num_query).mean()),
            "share_same_camera": float((cams[nearest] == cam).mean()),
            "share_same_person": float((pids[nearest] == pid).mean()),
            "same_person_images_per_query": float(same_person.sum(axis=1).mean() - 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("round")
    parser.add_argument("--k1", type=int, default=20)
    args = parser.parse_args()
    params = yaml.safe_load((args.project / "params.yaml").read_text())
    prepared = args.project / "data" / params["dataset"]["name"] / "prepared"
    index = read_index(prepared / "index.csv")
    images = load_image_cache(prepared / "images.npy")
    backbone, _ = load_backbone(args.project / "runs" / args.round / "model.pt", params["model"]["backbone"])
    device = resolve_device("auto")
    query, gallery = split_rows(index, "query"), split_rows(index, "gallery")
    features = [extract_features(backbone, images, device, params["features"]["batch_size"], rows=rows,
                                 progress=False).cpu() for rows in (query, gallery)]
    rows = np.concatenate([query, gallery])
    shares = neighbour_shares(cosine_distance(torch.cat(features)), index["pid"][rows], index["camid"][rows],
                              len(query), args.k1)
    print(json.dumps({"dataset": params["dataset"]["name"], "round": args.round, "queries": len(query),
                      "gallery": len(gallery), **{k: round(v, 4) if isinstance(v, float) else v
                                                  for k, v in shares.items()},
                      "date": date.today().isoformat(), "commit": git_commit(REPO),
                      "machine": platform.machine(), "device": str(device)}))


if __name__ == "__main__":
    main()
