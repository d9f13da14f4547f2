"""Stage `features@<round>`: L2-normalised, flip-averaged train features of the previous round's model."""
from __future__ import annotations

import argparse

import numpy as np
from common import load_images, load_index, load_params, round_dir, show_progress
from model_errors import model_must_work
from model_files import checkpoints_must_load
from params_io import device_and_precision, integer

from iics.checkpoint import load_backbone
from iics.features import extract_features, l2_normalize
from iics.index import split_rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("round")
    parser.add_argument("previous")
    args = parser.parse_args()
    params = load_params()
    batch_size = integer(params, "features.batch_size")
    device, bf16 = device_and_precision(params)
    model_path = round_dir(args.previous) / "model.pt"
    with checkpoints_must_load(f"features {args.round}"):
        backbone, _ = load_backbone(model_path, params["model"]["backbone"])
    images = load_images(params)
    train = split_rows(load_index(params), "train")
    with model_must_work(f"features {args.round}", model_path):
        features = extract_features(
            backbone, images, device, batch_size, bf16=bf16, progress=show_progress(), rows=train
        )
    np.save(round_dir(args.round) / "features.npy", l2_normalize(features).numpy().astype(np.float32))


if __name__ == "__main__":
    main()
