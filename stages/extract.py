"""Stage `extract`: raw files -> prepared/index.csv + prepared/images.npy, and metrics/dataset.json.

The raw folder holds an official zip (checked against its md5 and published counts), any
Market-1501-layout zip (dataset.subset picks one folder of several, as in CUHK03-NP), the
MSMT17 V2 zip, or your own crops with images.csv (dataset.layout).
An interrupted run leaves no index.csv, so it is never mistaken for a complete one.
"""
from __future__ import annotations

from common import METRICS, dataset_dir, load_params, prepared_dir, show_progress, write_json

from iics.datasets import check_dataset_settings, index_dataset, summarize
from iics.image_cache import build_image_cache, check_image_size
from iics.index import has_evaluation_split, has_train_identities, matched_queries, write_index


def main() -> None:
    params = load_params()
    dataset = params["dataset"]
    out = prepared_dir(params)
    progress = show_progress()
    try:
        # The settings first: a bad value or a misspelt dataset.name leaves a good index.csv in
        # place and makes no data/<name>/prepared/ folder. Then the old index goes before the raw
        # files are read, so a failure on them leaves none.
        check_image_size(dataset["height"], dataset["width"])  # before an md5 of a large zip, not after
        check_dataset_settings(dataset_dir(params) / "raw", dataset["name"], dataset["layout"], dataset.get("subset"))
        out.mkdir(parents=True, exist_ok=True)
        (out / "index.csv").unlink(missing_ok=True)
        source, index = index_dataset(
            dataset_dir(params) / "raw", dataset["name"], dataset["layout"], progress=progress,
            subset=dataset.get("subset"),
        )
        build_image_cache(source, list(index["image"]), dataset["height"], dataset["width"], out / "images.npy", progress=progress)
    except (ValueError, OSError) as exc:  # OSError: the prepared folder cannot be made or cleared
        raise SystemExit(f"extract: {exc}") from None
    write_index(index, out / "index.csv")
    summary = {
        "name": dataset["name"],
        "splits": summarize(index, dataset["layout"]),
        "evaluation": has_evaluation_split(index),
        "train_identities": has_train_identities(index),
    }
    if summary["evaluation"]:  # mAP and CMC are means over these queries alone
        summary["scored_queries"] = int(matched_queries(index).sum())
    write_json(METRICS / "dataset.json", summary)
    print(f"{dataset['name']} from {source.name}:")
    for split, counts in summary["splits"].items():
        distractors = f"  ({counts['distractors']} distractor images, not an identity)" if counts.get("distractors") else ""
        ids = f"{counts['ids']:6d} ids" if counts["ids"] else f"{'unlabelled':>10}"
        print(f"  {split:8s} {counts['images']:7d} images  {ids}  {counts['cameras']:3d} cameras{distractors}")
    # Intra-camera epochs end when the smallest camera runs out of images.
    per_camera = index.loc[index["split"] == "train", "camid"].value_counts().sort_index()
    if len(per_camera):
        fewest, most = per_camera.min(), per_camera.max()
        spread = f"{fewest} each" if fewest == most else (
            f"fewest {fewest} (camera {per_camera.idxmin()}), most {most} (camera {per_camera.idxmax()})")
        print(f"  train images per camera: {spread}")
    if summary["evaluation"]:
        queries, scored = summary["splits"]["query"]["images"], summary["scored_queries"]
        left_out = "" if scored == queries else (
            f" ({queries - scored} have no gallery image of their pid from another camera and are left out of mAP and CMC)")
        print(f"  queries scored: {scored} of {queries}{left_out}")
    else:
        print("  no query/gallery with identities: the evaluate stages will record that nothing was evaluated")


if __name__ == "__main__":
    main()
