"""Extraction at real-dataset scale: time per phase, peak memory and disk.

Writes a zip in an official layout with exactly the published counts (Market-1501: 12,936 /
3,368 / 15,913 images plus 3,819 junk, 6 cameras; MSMT17 V2: 32,621 / 11,659 / 82,161 with
list files, 15 cameras), filled with 128 x 64 JPEGs (Market-1501's own crop size), registers its
md5 as the official one, then runs what the `extract` stage runs in a fresh process: md5, index
and count checks (`iics.datasets.index_dataset`) and the image cache at 256 x 128
(`iics.image_cache.build_image_cache`).

    python benchmarks/extract_scale.py --scale market1501
    python benchmarks/extract_scale.py --scale msmt17 --workdir /big/disk

Prints one JSON line; benchmarks/results/ holds recorded outputs.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import date
from pathlib import Path

import numpy as np
from measure import git_commit
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
POOL = 256  # distinct JPEGs reused across members: decode cost is what matters, not variety

MEASURE = """
import dataclasses, json, resource, sys, time
from iics import datasets
from iics.image_cache import build_image_cache
raw, name, layout, md5, out, height, width = sys.argv[1:8]
datasets.OFFICIAL[name] = dataclasses.replace(datasets.OFFICIAL[name], md5s=(md5,) if md5 else ())
start = time.perf_counter()
source, index = datasets.index_dataset(raw, name, layout)
checked = time.perf_counter()
build_image_cache(source, list(index["image"]), int(height), int(width), out, progress=False)
done = time.perf_counter()
print(json.dumps({"images": len(index), "check_s": checked - start, "cache_s": done - checked,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def jpeg_pool(rng: np.random.Generator) -> list[bytes]:
    pool = []
    for _ in range(POOL):
        pixels = rng.integers(0, 256, size=(8, 4, 3), dtype=np.uint8)
        img = Image.fromarray(pixels).resize((64, 128), Image.BILINEAR)
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=90)
        pool.append(buffer.getvalue())
    return pool


def spread(total: int, ids: int) -> list[int]:
    """Identity of each of `total` images, as even as possible over `ids` identities."""
    return [i % ids for i in range(total)]


def write_market(path: Path, pool: list[bytes]) -> None:
    top = "Market-1501-v15.09.15/"
    splits = [("bounding_box_train", 12936, 751, 1), ("query", 3368, 750, 1000), ("bounding_box_test", 15913, 750, 1000)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        k = 0
        for folder, total, ids, first_pid in splits:
            gallery = folder == "bounding_box_test"
            for n, identity in enumerate(spread(total, ids)):
                pid = 0 if gallery and n % 7 == 6 else first_pid + identity
                # An identity's images share n % 6, so the gallery's camera is shifted by one: every
                # query has its matches in another camera, as evaluation (and `extract`) requires.
                camera = (n + gallery) % 6 + 1
                zf.writestr(f"{top}{folder}/{pid:04d}_c{camera}s1_{n:06d}_01.jpg", pool[k % POOL])
                k += 1
        for n in range(3819):
            zf.writestr(f"{top}bounding_box_test/-1_c{n % 6 + 1}s2_{n:06d}_01.jpg", pool[n % POOL])


def write_msmt17(path: Path, pool: list[bytes]) -> None:
    top = "MSMT17_V2/"
    lists = [("list_train.txt", "mask_train_v2", 30248, 1041, 0), ("list_val.txt", "mask_train_v2", 2373, 1041, 0),
             ("list_query.txt", "mask_test_v2", 11659, 3060, 0), ("list_gallery.txt", "mask_test_v2", 82161, 3060, 0)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        k = 0
        for list_name, folder, total, ids, first_pid in lists:
            lines = []
            shift = list_name == "list_gallery.txt"  # matches of a query in another camera, as in write_market
            for n, identity in enumerate(spread(total, ids)):
                pid = first_pid + identity
                name = f"{pid:04d}/{pid:04d}_{k:06d}_{(n + shift) % 15 + 1:02d}_0303morning_{n % 10000:04d}_0.jpg"
                zf.writestr(f"{top}{folder}/{name}", pool[k % POOL])
                lines.append(f"{name} {pid}")
                k += 1
            zf.writestr(top + list_name, "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=("market1501", "msmt17"), default="market1501")
    parser.add_argument("--workdir", default=None, help="where to write the zip and cache (default: a temp dir)")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    args = parser.parse_args()
    from iics.checksum import file_digest
    from iics.datasets import OFFICIAL

    release = OFFICIAL[args.scale]
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        raw = Path(tmp) / args.scale / "raw"
        raw.mkdir(parents=True)
        zip_path = raw / release.zip_name
        start = time.perf_counter()
        (write_market if args.scale == "market1501" else write_msmt17)(zip_path, jpeg_pool(np.random.default_rng(0)))
        generate_s = time.perf_counter() - start
        md5 = file_digest(zip_path, "md5") if release.md5s else ""
        out = Path(tmp) / "images.npy"
        env = dict(os.environ, PYTHONPATH=str(REPO))
        result = subprocess.run(
            [sys.executable, "-c", MEASURE, str(raw), args.scale, release.layout, md5, str(out), str(args.height), str(args.width)],
            env=env, stdout=subprocess.PIPE, text=True, check=True,  # its errors reach the terminal
        )
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        record = {
            "benchmark": "extract_scale", "scale": args.scale, "date": date.today().isoformat(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "commit": git_commit(REPO),
            "resolution": f"{args.height}x{args.width}", "generate_s": round(generate_s, 1),
            "zip_mib": round(zip_path.stat().st_size / 2**20, 1), "cache_gib": round(out.stat().st_size / 2**30, 2),
            "images": measured["images"], "check_s": round(measured["check_s"], 1), "cache_s": round(measured["cache_s"], 1),
            "images_per_s": round(measured["images"] / measured["cache_s"]), "peak_rss_mib": round(measured["peak_rss_mib"]),
        }
        print(json.dumps(record))


if __name__ == "__main__":
    main()
