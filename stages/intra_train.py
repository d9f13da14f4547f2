"""Stage `intra_train@<round>`: train the previous round's backbone with one head per camera."""
from __future__ import annotations

import argparse
import time

from common import (inputs_must_load, load_images, load_index, load_params, load_round_array, round_dir,
                    round_metrics_dir, round_number, show_progress, write_json)
from params_io import augment, device_and_precision, intra_training, optimizer, stage_seed

from iics.checkpoint import load_backbone, save_backbone
from iics.index import camera_positions, split_rows
from iics.models import ClassifierHead
from iics.runtime import seed_everything
from iics.sampling import smallest_camera
from iics.training import TrainingDiverged, train_intra_camera


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("round")
    parser.add_argument("previous")
    args = parser.parse_args()
    stage = f"intra_train {args.round}"
    params = load_params()
    t = round_number(params, args.round)
    seed = stage_seed(params, t, 1)
    training, sgd, augmentation = intra_training(params), optimizer(params, "intra"), augment(params)
    device, bf16 = device_and_precision(params)
    index = load_index(params, stage)
    train = split_rows(index, "train")
    _, camera_index = camera_positions(index["camid"][train])
    labels = load_round_array(stage, round_dir(args.round) / "intra_labels.npy", len(train))
    images = load_images(params, stage, index)[train]

    with inputs_must_load(stage):
        backbone, name = load_backbone(round_dir(args.previous) / "model.pt", params["model"]["backbone"])
    # The heads' initial weights come from a seed of their own, not the one `train_intra_camera`
    # gives its augmentation generator: one random stream per purpose.
    seed_everything(stage_seed(params, t, 3))
    heads = [
        ClassifierHead(backbone.feature_dim, int(labels[camera_index == c].max()) + 1)
        for c in range(int(camera_index.max()) + 1)
    ]
    camera, fewest = smallest_camera(index["camid"][train])
    print(f"intra_train {args.round}: {fewest // training.batch_per_camera} iterations per epoch, set by the "
          f"smallest camera (camera {camera}, {fewest} train images in batches of {training.batch_per_camera})")
    start = time.perf_counter()
    try:
        history = train_intra_camera(
            backbone, heads, images, camera_index, labels, training=training, optimizer=sgd,
            augment=augmentation, device=device, seed=seed, bf16=bf16, progress=show_progress(),
        )
    except TrainingDiverged as error:  # nothing is saved: the weights are NaN
        raise SystemExit(f"{stage}: {error} (intra.lr is {sgd.lr})") from None
    except ValueError as error:  # the data cannot make a batch (checked before the first step)
        raise SystemExit(f"{stage}: {error}") from None
    seconds = time.perf_counter() - start
    save_backbone(backbone, name, round_dir(args.round) / "intra_model.pt", heads=heads,
                  input_size=images.shape[1:3])
    steps = sum(epoch.steps for epoch in history)
    write_json(round_metrics_dir(args.round) / "intra_train.json", {"loss": history[-1].loss, "steps": steps})
    print(f"intra_train {args.round}: losses {[round(epoch.loss, 3) for epoch in history]} in {seconds:.1f}s on {device}")


if __name__ == "__main__":
    main()
