"""Stage `evaluate@<round>`: query/gallery mAP and CMC of a round's model."""
from __future__ import annotations

import argparse

from common import (inputs_must_load, load_images, load_index, load_params, round_dir, round_metrics_dir,
                    show_progress, write_json)
from model_errors import model_must_work
from params_io import device_and_precision, integer

from iics.checkpoint import load_backbone
from iics.evaluation import evaluate
from iics.features import cosine_distance, extract_features
from iics.index import has_evaluation_split, split_rows

NO_TEST_SET = "the dataset has no query/gallery images with identities"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("round")
    args = parser.parse_args()
    stage = f"evaluate {args.round}"
    params = load_params()
    batch = integer(params, "features.batch_size")
    device, bf16 = device_and_precision(params)
    index = load_index(params, stage)
    if not has_evaluation_split(index):
        write_json(round_metrics_dir(args.round) / "eval.json", {"evaluated": False, "reason": NO_TEST_SET})
        print(f"evaluate {args.round}: skipped, {NO_TEST_SET}")
        return
    images = load_images(params, stage)
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
    pids, cams = index["pid"], index["camid"]
    scores = evaluate(cosine_distance(q, g), pids[query], pids[gallery], cams[query], cams[gallery])
    scores = {"evaluated": True, **{k: round(float(v), 2) for k, v in scores.items()}}
    write_json(round_metrics_dir(args.round) / "eval.json", scores)
    print(f"evaluate {args.round}: " + "  ".join(f"{k} {v:.2f}" for k, v in scores.items() if k != "evaluated"))


if __name__ == "__main__":
    main()
