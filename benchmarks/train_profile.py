"""Where the two training steps spend their time: wall time per step, and a profile of the
operators with the most host (CPU) and device time, through iics.training as the stages run it.

    python benchmarks/train_profile.py                  # Market-1501's shape on CUDA: 6 cameras x 8, PK 16 x 4,
                                                        # ResNet-50-AIBN at 256 x 128, bf16
    python benchmarks/train_profile.py --backbone resnet18 --height 64 --width 32 --steps 3 --profile-steps 2
                                                        # a CPU smoke test

The images are random uint8 (training speed does not depend on what they show). The intra-camera
step forwards one batch of `--batch-per-camera` images per camera through the backbone, all
cameras in one forward with per-camera batch statistics (as `intra_train` does), the inter-camera
step one PK batch (`inter_train`). For each, `--steps`
steps are timed after a warm-up of the same length, then `--profile-steps` more run under
torch.profiler. Where the profile's device time is far below the wall time, the step waits on the
host (launching many small kernels), not on the GPU. Prints one JSON line per step kind and the
two top-operator tables.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]
from measure import git_commit  # noqa: E402

from iics.models import ClassifierHead, build_backbone  # noqa: E402
from iics.runtime import PRECISIONS, resolve_device, resolve_precision  # noqa: E402
from iics.settings import Augment, InterTraining, IntraTraining, Optimizer  # noqa: E402
from iics.training import train_inter_camera, train_intra_camera  # noqa: E402

INTRA_CLASSES = 600  # the paper's clusters per camera (count cut)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def intra_step_runner(args, device: torch.device, bf16: bool):
    """A function that trains `steps` intra-camera steps (one epoch of that length)."""
    backbone = build_backbone(args.backbone)
    heads = [ClassifierHead(backbone.feature_dim, INTRA_CLASSES) for _ in range(args.cameras)]
    rng = np.random.default_rng(0)
    most = max(args.steps, args.profile_steps) * args.batch_per_camera
    all_images = rng.integers(0, 256, (args.cameras, most, args.height, args.width, 3), dtype=np.uint8)

    def run(steps: int) -> None:
        per_camera = steps * args.batch_per_camera
        images = all_images[:, :per_camera].reshape(-1, args.height, args.width, 3)
        camera_index = np.repeat(np.arange(args.cameras), per_camera)
        labels = rng.integers(0, INTRA_CLASSES, len(images))
        train_intra_camera(backbone, heads, images, camera_index, labels,
                           training=IntraTraining(epochs=1, batch_per_camera=args.batch_per_camera),
                           optimizer=Optimizer(lr=0.005), augment=Augment(), device=device, seed=0, bf16=bf16,
                           progress=False)
    return run, args.cameras * args.batch_per_camera


def inter_step_runner(args, device: torch.device, bf16: bool):
    """A function that trains `steps` inter-camera PK steps (one epoch of that length)."""
    backbone = build_backbone(args.backbone)
    per_id = args.images_per_id
    rng = np.random.default_rng(1)
    most = max(args.steps, args.profile_steps) * args.ids_per_batch * per_id
    all_images = rng.integers(0, 256, (most, args.height, args.width, 3), dtype=np.uint8)

    def run(steps: int) -> None:
        identities = steps * args.ids_per_batch
        head = ClassifierHead(backbone.feature_dim, identities)
        images = all_images[:identities * per_id]
        labels = np.repeat(np.arange(identities), per_id)
        train_inter_camera(backbone, head, images, labels,
                           training=InterTraining(epochs=1, ids_per_batch=args.ids_per_batch, images_per_id=per_id,
                                                  margin=0.3),
                           optimizer=Optimizer(lr=0.01), augment=Augment(), device=device, seed=0, bf16=bf16,
                           progress=False)
    return run, args.ids_per_batch * per_id


def device_time_key(event) -> str:
    """The name of a profiler event's own device time: `self_device_time_total`, or
    `self_cuda_time_total` in the torch releases that had only that."""
    return "self_device_time_total" if hasattr(event, "self_device_time_total") else "self_cuda_time_total"


def profile_totals(events) -> tuple[float, float]:
    """(host, device) microseconds of a profile, as its table's 'Self CPU time total' and 'Self CUDA
    time total' count them: every event's own host time, and the own time of the device events
    (the kernels) alone. An operator's self device time repeats its kernels' time, and so does a
    device-side user annotation (the optimiser's `Optimizer.step#SGD.step` spans its kernels), so
    summing either would count that time twice; the table leaves both out."""
    host = sum(event.self_cpu_time_total for event in events)
    device = sum(getattr(event, device_time_key(event)) for event in events
                 if event.device_type != DeviceType.CPU and not getattr(event, "is_user_annotation", False))
    return host, device


def measure(name: str, run, images_per_step: int, args, device: torch.device, common: dict) -> str:
    """Time `args.steps` steps after a warm-up; profile `args.profile_steps` more. Returns the
    profile tables."""
    run(args.steps)  # warm-up: allocator, cuDNN algorithm choice, first-call costs
    synchronize(device)
    start = time.perf_counter()
    run(args.steps)
    synchronize(device)
    seconds = time.perf_counter() - start
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        run(args.profile_steps)
        synchronize(device)
    events = prof.key_averages()
    host_us, device_us = profile_totals(events)
    print(json.dumps({**common, "step": name, "steps": args.steps, "images_per_step": images_per_step,
                      "ms_per_step": round(1000 * seconds / args.steps, 1),
                      "images_per_s": round(args.steps * images_per_step / seconds),
                      "profiled_steps": args.profile_steps,
                      "profile_host_ms_per_step": round(host_us / 1000 / args.profile_steps, 1),
                      "profile_device_ms_per_step": round(device_us / 1000 / args.profile_steps, 1)}), flush=True)
    tables = (f"\n== {name}: top operators by host time ({args.profile_steps} steps)\n"
              + events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    if device.type == "cuda":
        tables += (f"\n== {name}: top operators by device time ({args.profile_steps} steps)\n"
                   + events.table(sort_by=device_time_key(events[0]), row_limit=args.rows))
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50_aibn")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--cameras", type=int, default=6)
    parser.add_argument("--batch-per-camera", type=int, default=8)
    parser.add_argument("--ids-per-batch", type=int, default=16)
    parser.add_argument("--images-per-id", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--profile-steps", type=int, default=5)
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto: bf16 on CUDA, else float32")
    parser.add_argument("--only", choices=("intra", "inter"), default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    bf16 = resolve_precision(args.precision, device)
    common = {"backbone": args.backbone, "input": f"{args.height}x{args.width}",
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
              "precision": "bf16" if bf16 else "float32", "torch": torch.__version__,
              "date": date.today().isoformat(), "commit": git_commit(REPO)}
    tables = []
    if args.only in (None, "intra"):
        tables.append(measure("intra", *intra_step_runner(args, device, bf16), args, device, common))
    if args.only in (None, "inter"):
        tables.append(measure("inter", *inter_step_runner(args, device, bf16), args, device, common))
    print("".join(tables), file=sys.stderr)


if __name__ == "__main__":
    main()
