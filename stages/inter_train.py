"""Stage `inter_train@<round>`: train on cross-camera pseudo-labels; writes the round's model."""
from __future__ import annotations

import argparse
import time

import numpy as np
from common import load_images, load_index, load_params, round_dir, round_metrics_dir, round_number, show_progress, stage_seed, write_json
from params_io import augment, device_and_precision, optimizer

from iics.checkpoint import load_backbone, save_backbone, trained_input_size
from iics.index import split_rows
from iics.models import ClassifierHead
from iics.runtime import seed_everything
from iics.training import train_inter_camera


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("round")
    args = parser.parse_args()
    params = load_params()
    t = round_number(params, args.round)
    intra_model = round_dir(args.round) / "intra_model.pt"
    backbone, name = load_backbone(intra_model, params["model"]["backbone"])
    out = round_dir(args.round) / "model.pt"
    metrics_path = round_metrics_dir(args.round) / "inter_train.json"
    cfg = params["inter"]
    if not cfg["enabled"]:
        save_backbone(backbone, name, out, input_size=trained_input_size(intra_model))
        write_json(metrics_path, {"enabled": False})
        print(f"inter_train {args.round}: inter-camera stage disabled; the round's model is the intra-camera one")
        return

    seed = stage_seed(params, t, 2)
    seed_everything(seed)
    device, bf16 = device_and_precision(params)
    index = load_index(params)
    train = split_rows(index, "train")
    images = load_images(params)[train]
    labels = np.load(round_dir(args.round) / "inter_labels.npy")
    head = ClassifierHead(backbone.feature_dim, int(labels.max()) + 1)
    start = time.perf_counter()
    losses = train_inter_camera(
        backbone, head, images, labels,
        epochs=cfg["epochs"], ids_per_batch=cfg["ids_per_batch"], images_per_id=cfg["images_per_id"],
        margin=cfg["margin"], optimizer=optimizer(cfg), augment=augment(params),
        device=device, seed=seed, bf16=bf16, progress=show_progress(),
    )
    seconds = time.perf_counter() - start
    save_backbone(backbone, name, out, input_size=images.shape[1:3])
    write_json(metrics_path, {"enabled": True, "loss": losses[-1]})
    print(f"inter_train {args.round}: losses {[round(x, 3) for x in losses]} in {seconds:.1f}s on {device}")


if __name__ == "__main__":
    main()
