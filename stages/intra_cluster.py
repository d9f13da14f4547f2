"""Stage `intra_cluster@<round>`: per-camera re-ranking + agglomerative clustering -> pseudo-labels."""
from __future__ import annotations

import argparse

import numpy as np
import torch
from common import load_index, load_params, load_round_array, round_dir, round_metrics_dir, shown, write_json
from params_io import compute_device, intra_cut, reranking

from iics.diagnostics import per_camera_label_quality
from iics.index import camera_positions, has_train_identities, split_rows
from iics.pseudo_labels import intra_camera_labels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("round")
    args = parser.parse_args()
    stage = f"intra_cluster {args.round}"
    params = load_params()
    cut, rerank = intra_cut(params), reranking(params)
    index = load_index(params, stage)
    train = split_rows(index, "train")
    cameras, camera_index = camera_positions(index["camid"][train])
    device = compute_device(params)  # re-ranking and (on CUDA) the linkage run there
    features_path = round_dir(args.round) / "features.npy"
    features = torch.from_numpy(load_round_array(stage, features_path, len(train))).to(device)
    try:
        labels = intra_camera_labels(features, index["camid"][train], cut, rerank)
    except ValueError as error:  # features that cannot be clustered: one line, nothing written
        raise SystemExit(f"{stage}: {shown(features_path)}: {error}") from None
    np.save(round_dir(args.round) / "intra_labels.npy", labels)

    per_camera = {f"c{cam}": int(labels[camera_index == i].max() + 1) for i, cam in enumerate(cameras)}
    quality = {}
    if has_train_identities(index):  # diagnostics only: ground-truth ids never reach training
        quality = per_camera_label_quality(labels, index["pid"][train], camera_index)
    write_json(round_metrics_dir(args.round) / "intra.json", {"clusters_per_camera": per_camera, **quality})
    nmi = f", NMI {quality['nmi']:.3f}" if quality else " (no train identities: no NMI)"
    print(f"intra {args.round}: clusters per camera {per_camera}{nmi}")


if __name__ == "__main__":
    main()
