"""Stage `evaluate@<round>`: query/gallery mAP and CMC of a round's model."""
from __future__ import annotations

import argparse

import torch

from common import (inputs_must_load, load_images, load_index, load_params, round_dir, round_metrics_dir,
                    show_progress, write_json)
from model_errors import model_must_work
from params_io import device_and_precision, evaluation_reranking, integer

from iics import rerank
from iics.checkpoint import load_backbone
from iics.evaluation import evaluate
from iics.features import cosine_distance, extract_features
from iics.index import has_evaluation_split, split_rows
from iics.runtime import free_memory

NO_TEST_SET = "the dataset has no query/gallery images with identities"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("round")
    args = parser.parse_args()
    stage = f"evaluate {args.round}"
    params = load_params()
    batch = integer(params, "features.batch_size")
    device, bf16 = device_and_precision(params)
    reranking = evaluation_reranking(params)
    index = load_index(params, stage)
    if not has_evaluation_split(index):
        write_json(round_metrics_dir(args.round) / "eval.json", {"evaluated": False, "reason": NO_TEST_SET})
        print(f"evaluate {args.round}: skipped, {NO_TEST_SET}")
        return
    images = load_images(params, stage, index)
    model_path = round_dir(args.round) / "model.pt"
    with inputs_must_load(stage):
        backbone, _ = load_backbone(model_path, params["model"]["backbone"])
    query, gallery = split_rows(index, "query"), split_rows(index, "gallery")
    # The memmapped cache and row indices: each batch is read as it is needed, never the whole split.
    with model_must_work(stage, model_path):
        q = extract_features(backbone, images, device, batch, bf16=bf16, progress=show_progress(), desc="query",
                             rows=query)
        g = extract_features(backbone, images, device, batch, bf16=bf16, progress=show_progress(), desc="gallery",
                             rows=gallery)
    q, g = q.to(device), g.to(device)  # distances and ranking on the device too
    pids, cams = index["pid"], index["camid"]
    labels = pids[query], pids[gallery], cams[query], cams[gallery]
    scores = evaluate(cosine_distance(q, g), *labels)
    if reranking is not None:
        scores.update({f"rerank_{k}": v for k, v in evaluate(reranked_distances(q, g, reranking, device, stage),
                                                              *labels).items()})
    scores = {"evaluated": True, **{k: round(float(v), 2) for k, v in scores.items()}}
    write_json(round_metrics_dir(args.round) / "eval.json", scores)
    print(f"evaluate {args.round}: " + "  ".join(f"{k} {v:.2f}" for k, v in scores.items() if k != "evaluated"))


def reranked_distances(q, g, reranking, device, stage: str):
    """Query x gallery distances after k-reciprocal re-ranking of both sets as one, on `device`;
    a one-line exit before the work when the matrices would not fit in its free memory."""
    n = len(q) + len(g)
    need, free = rerank.dense_bytes(n), free_memory(device)
    if free is not None and need > free:
        raise SystemExit(f"{stage}: re-ranking {n:,} query and gallery images needs about {need / 2**30:.1f} GiB, "
                         f"and {device} has {free / 2**30:.1f} GiB free; set evaluate.rerank.enabled=false")
    both = torch.cat([q, g])
    return rerank.query_gallery(cosine_distance(both), len(q), reranking.k1, reranking.k2, reranking.lambda_value)


if __name__ == "__main__":
    main()
