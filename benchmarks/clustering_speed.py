"""The pseudo-labelling phases of one round at real-dataset scale, timed one by one: intra-camera
re-ranking and linkage per camera, the inter-camera affinity (cosine + soft Jaccard of the
classifier outputs), its re-ranking and its linkage.

    python benchmarks/clustering_speed.py --scale market1501   # 12,936 images, 6 cameras
    python benchmarks/clustering_speed.py --scale msmt17       # 32,621 images, 15 cameras
    python benchmarks/clustering_speed.py --scale small        # 3,000 images, 6 cameras (CPU)
    python benchmarks/clustering_speed.py --linkage-only       # the inter-camera linkage alone
    python benchmarks/clustering_speed.py --linkage-only --cut quantile   # ... cut at the paper's quantile

Inputs are generated: L2-normalised 2048-d features of the dataset's number of identities (a
centre per identity plus noise), and per camera a softmax over that camera's paper cluster count
(600), peaked at the identity's cluster. At Market-1501 scale each camera holds as many images
as in the real train split (since 2026-12-07; before, cameras were drawn uniformly, about 2,156
images each, which is 12 % less per-camera work); MSMT17's per-camera counts are not known here,
so its cameras are drawn uniformly. The settings are the paper's (k1 20, k2 6, lambda 0.3,
count cut: 600 per camera, 800 across). Everything runs on the device (`--device`, default CUDA
when present) as the pipeline runs it: on CUDA the linkage merges reciprocal-nearest pairs in
parallel on the GPU, on a CPU it is scipy's nearest-neighbour chain. Prints one JSON line per
phase; times on CUDA are taken after a synchronize. `--linkage-only` times just the inter-camera
linkage, on the cosine distances of all images (the linkage's work depends mostly on the matrix
size), for machines where re-ranking at this scale would take too long; `--cut quantile` cuts it
at the paper's inter-camera quantile (0.0017) instead of the count, which also finds that
quantile among the n^2 / 2 distances; it does not generate the classifier outputs it does not
use. Each run ends with the process's peak host memory in MiB (and GPU memory on CUDA, GiB).
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import torch

import round_speed
from measure import git_commit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from iics.affinity import inter_camera_distance  # noqa: E402
from iics.cluster import agglomerative, capped_cluster_count  # noqa: E402
from iics.features import cosine_distance  # noqa: E402
from iics.rerank import k_reciprocal  # noqa: E402
from iics.runtime import resolve_device  # noqa: E402


@dataclass(frozen=True)
class Scale:
    images: int
    identities: int
    cameras: int
    images_per_camera: tuple[int, ...] | None = None  # None: each image's camera drawn uniformly


SCALES = {
    # The real split's images per camera, as round_speed renders them: the per-camera phases' work
    # grows with the square of each camera's count.
    "market1501": Scale(12_936, 751, 6, round_speed.SCALES["market1501"].images_per_camera),
    "msmt17": Scale(32_621, 1_041, 15),
    "small": Scale(3_000, 180, 6),
}
INTRA_COUNT, INTER_COUNT, INTER_QUANTILE, FEATURE_DIM = 600, 800, 0.0017, 2048


def make_inputs(scale: Scale, seed: int, with_probabilities: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor | None, np.ndarray]:
    """(features n x 2048, probabilities n x (cameras * 600) or None, camera index n). Cameras
    hold `scale.images_per_camera` images where given, in random order."""
    g = torch.Generator().manual_seed(seed)
    pids = torch.randint(0, scale.identities, (scale.images,), generator=g)
    if scale.images_per_camera is None:
        cams = torch.randint(0, scale.cameras, (scale.images,), generator=g)
    else:
        counts = torch.as_tensor(scale.images_per_camera)
        cams = torch.repeat_interleave(torch.arange(len(counts)), counts)[torch.randperm(scale.images, generator=g)]
    centres = torch.randn(scale.identities, FEATURE_DIM, generator=g)
    features = torch.nn.functional.normalize(centres[pids] + 1.5 * torch.randn(scale.images, FEATURE_DIM, generator=g), dim=1)
    if not with_probabilities:  # the linkage alone never reads them: they would only swell its peak memory
        return features, None, cams.numpy()
    logits = torch.randn(scale.images, scale.cameras, INTRA_COUNT, generator=g)
    logits[torch.arange(scale.images), :, pids % INTRA_COUNT] += 6.0
    probabilities = torch.softmax(logits, dim=-1).reshape(scale.images, -1)
    return features, probabilities, cams.numpy()


def timed(device: torch.device, fn, *args):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn(*args)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=SCALES, default="market1501")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--linkage-only", action="store_true")
    parser.add_argument("--cut", choices=("count", "quantile"), default="count",
                        help="with --linkage-only: cut at the paper's count (800) or quantile (0.0017)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    scale = SCALES[args.scale]
    features, probabilities, cams = make_inputs(scale, args.seed, with_probabilities=not args.linkage_only)
    features = features.to(device)
    commit = git_commit(REPO)
    common = {"scale": args.scale, "images": scale.images, "cameras": scale.cameras,
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "date": date.today().isoformat(), "commit": commit}

    def report(phase: str, seconds: float) -> None:
        print(json.dumps({**common, "phase": phase, "seconds": round(seconds, 3)}), flush=True)

    def report_peak_memory() -> None:
        peak = {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
        if device.type == "cuda":
            peak["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        print(json.dumps({**common, "phase": "peak memory", **peak}), flush=True)

    if args.linkage_only:
        dist = cosine_distance(features)
        if args.cut == "count":
            _, seconds = timed(device, agglomerative, dist, INTER_COUNT)
        else:
            _, seconds = timed(device, lambda d: agglomerative(d, quantile=INTER_QUANTILE), dist)
        report(f"inter linkage (cosine distances, {args.cut} cut)", seconds)
        report_peak_memory()
        return
    rerank_s = linkage_s = 0.0
    for cam in range(scale.cameras):
        members = torch.as_tensor(np.flatnonzero(cams == cam), device=device)
        reranked, seconds = timed(device, lambda f: k_reciprocal(cosine_distance(f)), features[members])
        rerank_s += seconds
        _, seconds = timed(device, agglomerative, reranked, capped_cluster_count(len(reranked), INTRA_COUNT))
        linkage_s += seconds
    report("intra re-ranking (all cameras)", rerank_s)
    report("intra linkage (all cameras)", linkage_s)
    probabilities = probabilities.to(device)
    dist, seconds = timed(device, inter_camera_distance, features, probabilities, torch.as_tensor(cams, device=device), 0.02)
    report("inter affinity (cosine + Jaccard)", seconds)
    reranked, seconds = timed(device, k_reciprocal, dist)
    report("inter re-ranking", seconds)
    del dist
    _, seconds = timed(device, agglomerative, reranked, INTER_COUNT)
    report("inter linkage", seconds)
    report_peak_memory()


if __name__ == "__main__":
    main()
