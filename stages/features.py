"""Stage `features@<round>`: L2-normalised, flip-averaged train features of the previous round's model."""
from __future__ import annotations

import argparse

import numpy as np
from common import load_params, prepared_dir, round_dir, show_progress

from iics.checkpoint import load_backbone
from iics.features import extract_features, l2_normalize
from iics.image_cache import load_image_cache
from iics.runtime import resolve_device
from iics.index import read_index, split_rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("round")
    parser.add_argument("previous")
    args = parser.parse_args()
    params = load_params()
    device = resolve_device(params["device"])
    backbone, _ = load_backbone(round_dir(args.previous) / "model.pt", params["model"]["backbone"])
    images = load_image_cache(prepared_dir(params) / "images.npy")
    train = split_rows(read_index(prepared_dir(params) / "index.csv"), "train")
    features = extract_features(
        backbone, images[train], device, params["features"]["batch_size"], progress=show_progress()
    )
    np.save(round_dir(args.round) / "features.npy", l2_normalize(features).numpy().astype(np.float32))


if __name__ == "__main__":
    main()
