"""Stage `inter_affinity@<round>`: cross-camera distance with classifier-output Jaccard -> pseudo-labels."""
from __future__ import annotations

import argparse

import numpy as np
from common import (inputs_must_load, load_images, load_index, load_params, round_dir, round_metrics_dir,
                    round_position, show_progress, shown, write_json)
from model_errors import model_must_work
from params_io import device_and_precision, integer, inter_cut, inter_enabled, number, reranking

from iics.affinity import mu_schedule
from iics.checkpoint import load_backbone, load_heads
from iics.diagnostics import pseudo_label_quality
from iics.features import camera_head_probabilities, extract_features
from iics.index import camera_positions, has_train_identities, split_rows
from iics.pseudo_labels import inter_camera_labels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("round")
    args = parser.parse_args()
    stage = f"inter_affinity {args.round}"
    params = load_params()
    labels_path = round_dir(args.round) / "inter_labels.npy"
    metrics_path = round_metrics_dir(args.round) / "inter.json"
    if not inter_enabled(params):
        np.save(labels_path, np.zeros(0, dtype=np.int64))
        write_json(metrics_path, {"enabled": False})
        print(f"inter_affinity {args.round}: inter-camera stage disabled (inter.enabled: false)")
        return

    t, total = round_position(params, args.round)
    mu_t, cut, rerank = mu_schedule(number(params, "inter.mu", 0), t, total), inter_cut(params), reranking(params)
    batch_size = integer(params, "features.batch_size")
    device, bf16 = device_and_precision(params)
    index = load_index(params, stage)
    train = split_rows(index, "train")
    _, camera_index = camera_positions(index["camid"][train])
    images = load_images(params, stage, index)
    model_path = round_dir(args.round) / "intra_model.pt"
    with inputs_must_load(stage):
        backbone, _ = load_backbone(model_path, params["model"]["backbone"])
        heads = load_heads(model_path, backbone.feature_dim)
    with model_must_work(stage, model_path):
        features = extract_features(backbone, images, device, batch_size, bf16=bf16,
                                    progress=show_progress(), rows=train).to(device)
    probabilities = camera_head_probabilities(features, heads, device)
    # Affinity, re-ranking and (on CUDA) the linkage run on the device too.
    try:
        labels = inter_camera_labels(features, probabilities, camera_index, mu_t, cut, rerank)
    except ValueError as error:  # e.g. quantile cut with every distance 0: one line, nothing written
        raise SystemExit(f"{stage}: {shown(model_path)}: {error}") from None
    np.save(labels_path, labels)

    quality = {"num_clusters": int(labels.max() + 1)}
    if has_train_identities(index):  # diagnostics only: ground-truth ids never reach training
        quality = pseudo_label_quality(labels, index["pid"][train])
    write_json(metrics_path, {"enabled": True, "mu_t": mu_t, **quality})
    nmi = f", NMI {quality['nmi']:.3f}" if "nmi" in quality else ""
    print(f"inter_affinity {args.round}: {quality['num_clusters']} clusters{nmi}, mu_t {mu_t:.4f}")


if __name__ == "__main__":
    main()
