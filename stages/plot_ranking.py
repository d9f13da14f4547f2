"""Stage `plot_ranking`: a few queries and their top-k gallery matches under the last round's
model (plots/ranking.png), correct matches framed green and wrong ones red."""
from __future__ import annotations

import argparse

from common import ROOT, inputs_must_load, load_images, load_index, load_params, round_dir, show_progress
from model_errors import model_must_work
from params_io import device_and_precision, integer

from iics.checkpoint import load_backbone
from iics.features import cosine_distance, extract_features
from iics.index import has_evaluation_split, split_rows
from iics.plots import save_message, save_ranking
from iics.ranking import choose_queries, rank_gallery

OUTPUT = ROOT / "plots" / "ranking.png"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("round")
    args = parser.parse_args()
    stage = f"plot_ranking {args.round}"
    params = load_params()
    queries, top_k = integer(params, "plots.ranking_queries"), integer(params, "plots.top_k")
    seed, batch = integer(params, "plots.seed", minimum=0), integer(params, "features.batch_size")
    index = load_index(params, stage)
    if not has_evaluation_split(index):
        save_message("no query/gallery images with identities: nothing to rank", OUTPUT)
        print("plot_ranking: no evaluation split, wrote a note to plots/ranking.png")
        return
    device, bf16 = device_and_precision(params)
    images = load_images(params, stage, index)
    query, gallery = split_rows(index, "query"), split_rows(index, "gallery")
    pids, cams = index["pid"], index["camid"]
    chosen = choose_queries(pids[query], cams[query], pids[gallery], cams[gallery],
                            queries, seed)
    shown = query[chosen]
    model_path = round_dir(args.round) / "model.pt"
    with inputs_must_load(stage):
        backbone, _ = load_backbone(model_path, params["model"]["backbone"])
    with model_must_work(stage, model_path):
        q = extract_features(backbone, images, device, batch, bf16=bf16, progress=show_progress(), desc="query",
                             rows=shown)
        g = extract_features(backbone, images, device, batch, bf16=bf16, progress=show_progress(), desc="gallery",
                             rows=gallery)
    ranking = rank_gallery(cosine_distance(q, g).numpy(), range(len(shown)), pids[shown], cams[shown],
                           pids[gallery], cams[gallery], top_k)
    save_ranking(images[shown], images[gallery[ranking.gallery]], ranking.correct, ranking.distances, OUTPUT)
    print(f"plot_ranking: {len(chosen)} queries, top {ranking.gallery.shape[1]}, "
          f"{int(ranking.correct.sum())} correct matches shown -> plots/ranking.png")


if __name__ == "__main__":
    main()
