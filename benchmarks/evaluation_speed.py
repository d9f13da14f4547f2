"""An evaluation's ranking at real-dataset scale: query x gallery cosine distances, then mAP and
CMC, on the device the pipeline uses (the `evaluate` stage's work after its feature pass).

    python benchmarks/evaluation_speed.py --scale market1501   # 3,368 queries x 15,913 gallery images
    python benchmarks/evaluation_speed.py --scale msmt17       # 11,659 x 82,161
    python benchmarks/evaluation_speed.py --scale market1501 --device cpu

Features are generated: L2-normalised 2048-d vectors around one centre per identity, with the
dataset's numbers of identities and cameras. The default schedule evaluates every fifth round and
the last (9 of 40 rounds), so a second here costs about 0.2 s a round. Prints one JSON line per
phase (times on CUDA after a synchronize) and the peak memory; the metrics are printed too, so a
run that ranks wrongly shows it.
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

import torch

from measure import git_commit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from iics.evaluation import evaluate  # noqa: E402
from iics.features import cosine_distance  # noqa: E402
from iics.runtime import resolve_device  # noqa: E402


@dataclass(frozen=True)
class Scale:
    queries: int
    gallery: int
    identities: int  # in the query set; the gallery holds these and as many others
    cameras: int


SCALES = {
    "market1501": Scale(3_368, 15_913, 750, 6),
    "msmt17": Scale(11_659, 82_161, 3_060, 15),
    "small": Scale(500, 3_000, 100, 6),
}
FEATURE_DIM = 2048


def make_features(scale: Scale, seed: int):
    """(query features, gallery features, query pids, gallery pids, query cameras, gallery cameras)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(2 * scale.identities, FEATURE_DIM, generator=g)
    query_pids = torch.randint(0, scale.identities, (scale.queries,), generator=g)
    gallery_pids = torch.randint(0, 2 * scale.identities, (scale.gallery,), generator=g)

    def around(pids: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(centres[pids] + 3.5 * torch.randn(len(pids), FEATURE_DIM, generator=g), dim=1)

    query_cams = torch.randint(0, scale.cameras, (scale.queries,), generator=g)
    gallery_cams = torch.randint(0, scale.cameras, (scale.gallery,), generator=g)
    return around(query_pids), around(gallery_pids), query_pids, gallery_pids, query_cams, gallery_cams


def synchronized(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=SCALES, default="market1501")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = resolve_device(args.device)
    scale = SCALES[args.scale]
    q, g, *labels = (x.to(device) for x in make_features(scale, args.seed))
    common = {"scale": args.scale, "queries": scale.queries, "gallery": scale.gallery,
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "date": date.today().isoformat(), "commit": git_commit(REPO)}
    start = synchronized(device)
    distances = cosine_distance(q, g)
    middle = synchronized(device)
    metrics = evaluate(distances, *labels)
    end = synchronized(device)
    for phase, seconds in (("cosine distances", middle - start), ("ranking: mAP and CMC", end - middle)):
        print(json.dumps({**common, "phase": phase, "seconds": round(seconds, 3)}), flush=True)
    peak = {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    if device.type == "cuda":
        peak["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    print(json.dumps({**common, "phase": "peak memory", **peak}), flush=True)
    print(json.dumps({**common, "phase": "metrics", **{k: round(v, 2) for k, v in metrics.items()}}), flush=True)


if __name__ == "__main__":
    main()
