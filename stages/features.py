"""Stage `features@<round>`: L2-normalised, flip-averaged train features of the previous round's model."""
from __future__ import annotations

import argparse

import numpy as np
from common import inputs_must_load, load_images, load_index, load_params, round_dir, show_progress
from model_errors import model_must_work
from params_io import device_and_precision, integer

from iics.checkpoint import load_backbone
from iics.features import extract_features, l2_normalize
from iics.index import split_rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("round")
    parser.add_argument("previous")
    args = parser.parse_args()
    stage = f"features {args.round}"
    params = load_params()
    batch_size = integer(params, "features.batch_size")
    device, bf16 = device_and_precision(params)
    model_path = round_dir(args.previous) / "model.pt"
    with inputs_must_load(stage):
        backbone, _ = load_backbone(model_path, params["model"]["backbone"])
    index = load_index(params, stage)
    images = load_images(params, stage, index)
    train = split_rows(index, "train")
    with model_must_work(stage, model_path):
        features = extract_features(
            backbone, images, device, batch_size, bf16=bf16, progress=show_progress(), rows=train
        )
    np.save(round_dir(args.round) / "features.npy", l2_normalize(features).numpy().astype(np.float32))


if __name__ == "__main__":
    main()
