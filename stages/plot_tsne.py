"""Stage `plot_tsne`: t-SNE maps of train features from the starting model and from the last round's
model (plots/tsne.png), coloured by true identity when the dataset gives one, marker by camera."""
from __future__ import annotations

import argparse

from common import ROOT, inputs_must_load, load_images, load_index, load_params, round_dir, show_progress
from model_errors import model_must_work
from params_io import device_and_precision, integer

from iics.checkpoint import load_backbone
from iics.features import extract_features, l2_normalize
from iics.index import split_rows
from iics.plots import save_tsne
from iics.tsne import sample_for_tsne, tsne_2d


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("first", help="model before training (init)")
    parser.add_argument("last", help="model after the last round")
    args = parser.parse_args()
    stage = "plot_tsne"
    params = load_params()
    identities, max_images = integer(params, "plots.tsne_identities"), integer(params, "plots.tsne_max_images")
    seed, batch = integer(params, "plots.seed", minimum=0), integer(params, "features.batch_size")
    device, bf16 = device_and_precision(params)
    index = load_index(params, stage)
    train = split_rows(index, "train")
    pids = index["pid"][train]
    rows = train[sample_for_tsne(pids, identities, max_images, seed)]
    images = load_images(params, stage, index)[rows]
    models = []
    for round_id in (args.first, args.last):  # both checked before the first is used
        model_path = round_dir(round_id) / "model.pt"
        with inputs_must_load(stage):
            models.append((round_id, model_path, load_backbone(model_path, params["model"]["backbone"])[0]))
    maps = []
    for round_id, model_path, backbone in models:
        with model_must_work(stage, model_path):
            features = extract_features(backbone, images, device, batch,
                                        bf16=bf16, progress=show_progress(), desc=f"features {round_id}")
        maps.append(tsne_2d(l2_normalize(features).numpy(), seed))
    titles = (f"train features, {args.first} (before training)", f"train features, after {args.last}")
    save_tsne(maps[0], maps[1], index["pid"][rows], index["camid"][rows], titles,
              ROOT / "plots" / "tsne.png")
    print(f"plot_tsne: {len(rows)} train images -> plots/tsne.png")


if __name__ == "__main__":
    main()
