"""One IICS round at real-dataset scale, stage by stage, each stage script run as `dvc repro` runs
it: time, throughput, peak host and GPU memory per stage. Needs no DVC (it runs each stage with
dvc.yaml's command, `python stages/run.py NAME ...`, so their start-up is included; DVC's own work
per stage, its start-up and hashing the stage's inputs and outputs, is not) and no dataset (it
renders synthetic people).

    python benchmarks/round_speed.py --scale market1501      # 12,936 train images, 6 cameras
    python benchmarks/round_speed.py --scale msmt17          # 32,621 train images, 15 cameras
    python benchmarks/round_speed.py --scale tiny            # a CPU smoke test in about a minute
    python benchmarks/round_speed.py --set precision=float32 # the plain float32 path, for comparison
    IICS_WARM=0 python benchmarks/round_speed.py             # every stage in a fresh process (no warm start)

The settings are the shipped paper configuration of that dataset (benchmarks/paper_params/,
composed from conf/ by `python stages/configure.py dataset=<name>`; a test keeps them equal),
with random initialisation instead of the ImageNet file (the speed is the same) and round 0 of
the 40-round schedule. The train split is rendered by iics.synthetic at 256 x 128 with the
dataset's number of identities, cameras and images (every identity in 4 cameras), in parallel,
and cached under --workdir. At Market-1501 scale each camera holds as many train images as in
the real release, since the smallest camera sets the length of an intra-camera epoch; MSMT17's
per-camera counts are not known here, so its cameras are about equal, which makes its
intra-camera epoch the longest the total allows. Prints a table and one JSON line per stage:
the images each stage pushed through the network (or clustered) and their rate.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from measure import git_commit, measured  # noqa: E402
from tiny_repo import merge_config, parse_override  # noqa: E402

from iics import synthetic  # noqa: E402
from iics.index import write_index  # noqa: E402


@dataclass(frozen=True)
class Scale:
    identities: int
    cameras: int
    images: int
    cameras_per_id: int
    params: str  # benchmarks/paper_params/<params>.yaml
    overrides: dict
    images_per_camera: tuple[int, ...] | None = None  # None: spread about equally


SCALES = {
    # bounding_box_train of Market-1501 holds 2,017 / 1,709 / 2,707 / 920 / 2,338 / 3,245 images from cameras 1-6.
    "market1501": Scale(751, 6, 12_936, 4, "market1501", {}, (2_017, 1_709, 2_707, 920, 2_338, 3_245)),
    "msmt17": Scale(1_041, 15, 32_621, 4, "msmt17", {}),
    "tiny": Scale(24, 3, 240, 2, "market1501", {
        "dataset": {"height": 64, "width": 32}, "model": {"backbone": "resnet18"},
        "clustering": {"intra_count": 30, "inter_count": 20}, "intra": {"batch_per_camera": 4},
        "inter": {"ids_per_batch": 4, "images_per_id": 2}, "features": {"batch_size": 64}}),
}
# One round in the order dvc repro runs it: (stage, the arguments of stages/run.py, as dvc.yaml's
# commands give them).
ROUND = (
    ("init", ["init_model"]),
    ("features", ["features", "r00", "init"]),
    ("intra_cluster", ["intra_cluster", "r00"]),
    ("intra_train", ["intra_train", "r00", "init"]),
    ("inter_affinity", ["inter_affinity", "r00"]),
    ("inter_train", ["inter_train", "r00"]),
)


def _split(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """`total` as `parts` sizes that differ by at most one."""
    sizes = np.full(parts, total // parts)
    sizes[rng.choice(parts, total - sizes.sum(), replace=False)] += 1
    return sizes


def plan(scale: Scale, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pid, camid) of every train image: each identity in `cameras_per_id` cameras, the images
    spread over those tracklets so that the total is exactly `scale.images` (and each camera's
    exactly `scale.images_per_camera`, where given)."""
    rng = np.random.default_rng(seed)
    if scale.images_per_camera is None:
        weights = None
    else:
        weights = np.asarray(scale.images_per_camera, dtype=float) / scale.images
    tracklets = [(pid, cam) for pid in range(1, scale.identities + 1)
                 for cam in np.sort(rng.choice(scale.cameras, scale.cameras_per_id, replace=False, p=weights)) + 1]
    tracklet_cams = np.array([c for _, c in tracklets])
    if scale.images_per_camera is None:
        sizes = _split(scale.images, len(tracklets), rng)
    else:
        sizes = np.empty(len(tracklets), dtype=np.int64)
        for cam, count in enumerate(scale.images_per_camera, start=1):
            sizes[tracklet_cams == cam] = _split(count, int((tracklet_cams == cam).sum()), rng)
    pids = np.repeat([p for p, _ in tracklets], sizes)
    cams = np.repeat(tracklet_cams, sizes)
    return pids.astype(np.int64), cams.astype(np.int64)


def images_processed(stage: str, params: dict, cams: np.ndarray, project: Path) -> int | None:
    """How many images a stage pushed through the network or clustered: the train set for the
    feature and clustering stages; for training, the images its batches held (the steps the
    stage recorded, times the images in one step)."""
    if stage == "init":
        return None
    if stage in ("intra_train", "inter_train"):
        steps = json.loads((project / "metrics" / "rounds" / "r00" / f"{stage}.json").read_text())["steps"]
        if stage == "intra_train":
            return steps * len(np.unique(cams)) * params["intra"]["batch_per_camera"]
        return steps * params["inter"]["ids_per_batch"] * params["inter"]["images_per_id"]
    return len(cams)


def _render_chunk(job: tuple) -> np.ndarray:
    pids, cams, num_identities, num_cameras, height, width, seed, start = job
    rng = np.random.default_rng(seed)
    identities, _ = synthetic.make_identities(num_identities, rng)
    cameras = synthetic.make_cameras(num_cameras, height, width, rng)
    out = np.empty((len(pids), height, width, 3), dtype=np.uint8)
    for i, (pid, cam) in enumerate(zip(pids, cams)):
        record = synthetic.Record("bounding_box_train", "", "person", identities[pid - 1], int(cam))
        image_rng = np.random.default_rng(np.random.SeedSequence([seed, start + i]))
        out[i] = synthetic.render_image(record, cameras[cam - 1], height, width, image_rng, 0.15)
    return out


def render(pids: np.ndarray, cams: np.ndarray, scale: Scale, height: int, width: int, seed: int) -> np.ndarray:
    """Every image, rendered in parallel chunks (the same identities and cameras in each worker)."""
    step = 512
    jobs = [(pids[s:s + step], cams[s:s + step], scale.identities, scale.cameras, height, width, seed, s)
            for s in range(0, len(pids), step)]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        return np.concatenate(list(pool.map(_render_chunk, jobs)))


def prepare(workdir: Path, scale_name: str, seed: int, overrides: list[dict]) -> tuple[Path, dict, np.ndarray]:
    """A copy of stages/ and iics/ with params.yaml and the prepared data; returns (project,
    params, the camera of every train image)."""
    scale = SCALES[scale_name]
    params = yaml.safe_load((REPO / "benchmarks" / "paper_params" / f"{scale.params}.yaml").read_text())
    for update in (scale.overrides, *overrides):
        merge_config(params, update)
    merge_config(params, {"dataset": {"name": "bench"}, "model": {"weights": None}})
    height, width = params["dataset"]["height"], params["dataset"]["width"]
    project = workdir / f"project-{scale_name}"
    if project.exists():
        shutil.rmtree(project)
    for name in ("stages", "iics"):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    prepared = project / "data" / "bench" / "prepared"
    prepared.mkdir(parents=True)
    layout = "real-cameras" if scale.images_per_camera else "even-cameras"
    cache = workdir / f"images-{scale_name}-{layout}-{height}x{width}-{seed}.npy"
    pids, cams = plan(scale, seed)
    if not cache.is_file():
        start = time.perf_counter()
        np.save(cache.with_suffix(".tmp.npy"), render(pids, cams, scale, height, width, seed))
        os.replace(cache.with_suffix(".tmp.npy"), cache)
        print(f"rendered {len(pids)} images in {time.perf_counter() - start:.0f} s -> {cache}", file=sys.stderr)
    os.symlink(cache, prepared / "images.npy")
    write_index(pd.DataFrame({"image": [f"{i:06d}.jpg" for i in range(len(pids))], "pid": pids, "camid": cams,
                              "split": "train"}), prepared / "index.csv")
    return project, params, cams


def run_stage(project: Path, args: list[str]) -> dict:
    env = dict(os.environ, IICS_PROGRESS="0", PYTHONPATH=str(project))
    report = measured([sys.executable, project / "stages" / "run.py", *args], project, env)
    gpu = [line for line in report["out"].splitlines() if line.startswith("peak GPU memory:")]
    report["peak_gpu_gib"] = float(gpu[-1].split()[3]) if gpu else None
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=SCALES, default="market1501")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/iics-round-speed"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[],
                        metavar="KEY=VALUE", help="override a paper setting, e.g. precision=float32")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    project, params, cams = prepare(args.workdir, args.scale, args.seed, args.overrides)
    images = len(cams)
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    commit = git_commit(REPO)
    common = {"scale": args.scale, "train_images": images, "backbone": params["model"]["backbone"],
              "input": f"{params['dataset']['height']}x{params['dataset']['width']}", "device": device,
              "precision": params["precision"], "overrides": args.overrides,
              "warm_start": os.environ.get("IICS_WARM", "1") != "0",
              "torch": torch.__version__, "date": date.today().isoformat(), "commit": commit}
    rows = []
    for stage, stage_args in ROUND:
        report = run_stage(project, stage_args)
        processed = images_processed(stage, params, cams, project)
        rows.append({"stage": stage, "seconds": round(report["seconds"], 2), "images": processed,
                     "images_per_s": None if processed is None else round(processed / report["seconds"]),
                     "peak_rss_mib": round(report["peak_kib"] / 1024), "peak_gpu_gib": report["peak_gpu_gib"]})
        print(json.dumps({**common, **rows[-1]}), flush=True)
    round_seconds = sum(r["seconds"] for r in rows if r["stage"] != "init")
    print(json.dumps({**common, "stage": "round (without init)", "seconds": round(round_seconds, 2)}), flush=True)
    print(f"\n{args.scale}: {images} train images, {common['backbone']} at {common['input']}, {device}, "
          f"precision {params['precision']}, commit {commit}", file=sys.stderr)
    print(f"{'stage':<16}{'seconds':>9}{'images':>9}{'img/s':>8}{'host MiB':>10}{'GPU GiB':>9}", file=sys.stderr)
    for r in rows:
        print(f"{r['stage']:<16}{r['seconds']:>9.1f}{r['images'] or '':>9}{r['images_per_s'] or '':>8}{r['peak_rss_mib']:>10}"
              f"{r['peak_gpu_gib'] if r['peak_gpu_gib'] is not None else '':>9}", file=sys.stderr)
    print(f"{'one round':<16}{round_seconds:>9.1f}", file=sys.stderr)


if __name__ == "__main__":
    main()
