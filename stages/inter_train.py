"""Stage `inter_train@<round>`: train on cross-camera pseudo-labels; writes the round's model."""
from __future__ import annotations

import argparse
import time

from common import (inputs_must_load, load_images, load_index, load_params, load_round_array, round_dir,
                    round_metrics_dir, round_number, show_progress, write_json)
from params_io import augment, device_and_precision, inter_enabled, inter_training, optimizer, stage_seed

from iics.checkpoint import load_backbone, save_backbone, trained_input_size
from iics.index import split_rows
from iics.models import ClassifierHead
from iics.runtime import seed_everything
from iics.training import TrainingDiverged, train_inter_camera


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("round")
    args = parser.parse_args()
    stage = f"inter_train {args.round}"
    params = load_params()
    t = round_number(params, args.round)
    intra_model = round_dir(args.round) / "intra_model.pt"
    with inputs_must_load(stage):
        backbone, name = load_backbone(intra_model, params["model"]["backbone"])
    out = round_dir(args.round) / "model.pt"
    metrics_path = round_metrics_dir(args.round) / "inter_train.json"
    if not inter_enabled(params):
        save_backbone(backbone, name, out, input_size=trained_input_size(intra_model))  # the file just loaded
        write_json(metrics_path, {"enabled": False})
        print(f"inter_train {args.round}: inter-camera stage disabled; the round's model is the intra-camera one")
        return

    seed = stage_seed(params, t, 2)
    training, sgd, augmentation = inter_training(params), optimizer(params, "inter"), augment(params)
    seed_everything(seed)
    device, bf16 = device_and_precision(params)
    index = load_index(params, stage)
    train = split_rows(index, "train")
    images = load_images(params, stage, index)[train]
    labels = load_round_array(stage, round_dir(args.round) / "inter_labels.npy", len(train))
    head = ClassifierHead(backbone.feature_dim, int(labels.max()) + 1)
    start = time.perf_counter()
    try:
        history = train_inter_camera(
            backbone, head, images, labels, training=training, optimizer=sgd, augment=augmentation,
            device=device, seed=seed, bf16=bf16, progress=show_progress(),
        )
    except TrainingDiverged as error:  # nothing is saved: the weights are NaN
        raise SystemExit(f"{stage}: {error} (inter.lr is {sgd.lr})") from None
    except ValueError as error:  # too few pseudo-identities for a PK batch (checked before the first step)
        raise SystemExit(f"{stage}: {error}") from None
    seconds = time.perf_counter() - start
    save_backbone(backbone, name, out, input_size=images.shape[1:3])
    steps = sum(epoch.steps for epoch in history)
    write_json(metrics_path, {"enabled": True, "loss": history[-1].loss, "steps": steps})
    print(f"inter_train {args.round}: losses {[round(epoch.loss, 3) for epoch in history]}, steps per epoch "
          f"{[epoch.steps for epoch in history]}, in {seconds:.1f}s on {device}")


if __name__ == "__main__":
    main()
