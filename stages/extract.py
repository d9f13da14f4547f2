"""Stage `extract`: raw zip -> prepared/index.csv + prepared/images.npy (uint8 image cache)."""
from __future__ import annotations

from common import dataset_dir, load_params, prepared_dir, show_progress

from iics.image_cache import build_image_cache
from iics.market import index_market_zip


def find_zip(raw_dir):
    zips = sorted(raw_dir.glob("*.zip"))
    if len(zips) != 1:
        found = ", ".join(z.name for z in zips) or "none"
        raise SystemExit(f"{raw_dir}: expected exactly one dataset zip, found {found}")
    return zips[0]


def main() -> None:
    params = load_params()
    zip_path = find_zip(dataset_dir(params) / "raw")
    out = prepared_dir(params)
    out.mkdir(parents=True, exist_ok=True)
    index = index_market_zip(zip_path)
    build_image_cache(
        zip_path, list(index["image"]), params["dataset"]["height"], params["dataset"]["width"],
        out / "images.npy", progress=show_progress(),
    )
    index.to_csv(out / "index.csv", index=False)
    for split, part in index.groupby("split", sort=False):
        print(f"{split:8s} {len(part):6d} images  {part['pid'].nunique():5d} ids  {part['camid'].nunique():3d} cameras")


if __name__ == "__main__":
    main()
