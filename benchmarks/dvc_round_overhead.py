"""DVC's own work in one round at a dataset's scale: what `dvc repro` adds around a round's five
stages (checking their dependencies, hashing their outputs, copying the cached ones into
.dvc/cache, writing dvc.lock), apart from the stages' own work.

    python benchmarks/dvc_round_overhead.py --scale market1501
    python benchmarks/dvc_round_overhead.py --scale msmt17 --tries 3

The round benchmark (`round_speed.py`) runs the stage scripts without DVC, so this is the part
of "one round as `dvc repro` runs it" it leaves out. A temporary DVC project has one round with
the real round's stages, dependency graph and output files at the dataset's sizes (ResNet-50:
a 90 MiB model; the train split's features, 2,048 floats an image; the image cache of every
split, 256 x 128); each stage's command is a Python one-liner that writes its outputs as fresh
random bytes, so every rerun has new files to hash and cache, as a training round does. The
image cache is hashed by an untimed first `dvc repro`, as `extract` has it hashed in the real
pipeline. Each try changes a parameter the round's first stage reads and times `dvc repro`;
each command writes down when it started and ended, so the overhead is the wall time minus the
commands' own time (their Python start-up, about 0.05 s each, is part of the overhead). Prints
one JSON line per try and a summary line with the medians, among them each gap between two
commands: before a command DVC checks its stage's dependencies; after one it hashes the
outputs, copies the cached ones into .dvc/cache and writes dvc.lock.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from measure import git_commit  # noqa: E402
from tiny_repo import GIT, REPO, dvc_executable  # noqa: E402

MIB = 2**20
IMAGE_BYTES = 256 * 128 * 3  # one uint8 image of the cache
MODEL_BYTES = 90 * MIB  # ResNet-50-AIBN's saved state (benchmarks/startup.py)
FEATURE_BYTES = 2048 * 4  # one float32 feature row

# train images, all images (train, query, gallery), intra-camera pseudo-identities (all cameras'
# heads together; at most one per train image, about one per 4 images at Market-1501 scale).
SCALES = {
    "market1501": {"train": 12_936, "images": 12_936 + 3_368 + 15_913, "intra_classes": 3_200},
    "msmt17": {"train": 32_621, "images": 32_621 + 11_659 + 82_161, "intra_classes": 8_000},
    "tiny": {"train": 300, "images": 900, "intra_classes": 80},  # for the test
}

WRITER = """import json, os, sys, time
start = time.time()
for path, size in zip(sys.argv[2::2], sys.argv[3::2]):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        for offset in range(0, int(size), 1 << 24):
            out.write(os.urandom(min(1 << 24, int(size) - offset)))
with open("times.jsonl", "a") as log:
    log.write(json.dumps({"stage": sys.argv[1], "start": start, "end": time.time()}) + "\\n")
"""


def round_stages(scale: dict) -> dict:
    """dvc.yaml's stages for one round: the real round's dependencies and outputs, each command
    writing its outputs at the scale's sizes."""
    train, images = scale["train"], scale["images"]
    heads = MODEL_BYTES + scale["intra_classes"] * FEATURE_BYTES

    def stage(name: str, deps: list[str], outs: dict[str, tuple[int, bool]], params: list[str] | None = None) -> dict:
        sizes = " ".join(f"{path} {size}" for path, (size, _) in outs.items())
        spec = {"cmd": f"python writer.py {name} {sizes}", "deps": ["writer.py", *deps],
                "outs": [path if cached else {path: {"cache": False}} for path, (_, cached) in outs.items()]}
        if params:
            spec["params"] = params
        return spec

    data = ["data/images.npy", "data/index.csv"]
    return {"stages": {
        "features": stage("features", [*data, "runs/init/model.pt"],
                          {"runs/r00/features.npy": (train * FEATURE_BYTES, False)}, params=["salt"]),
        "intra_cluster": stage("intra_cluster", ["data/index.csv", "runs/r00/features.npy"],
                               {"runs/r00/intra_labels.npy": (train * 8, True),
                                "metrics/intra.json": (100, False)}),
        "intra_train": stage("intra_train", [*data, "runs/init/model.pt", "runs/r00/intra_labels.npy"],
                             {"runs/r00/intra_model.pt": (heads, False), "metrics/intra_train.json": (100, False)}),
        "inter_affinity": stage("inter_affinity", [*data, "runs/r00/intra_model.pt"],
                                {"runs/r00/inter_labels.npy": (train * 8, True), "metrics/inter.json": (100, False)}),
        "inter_train": stage("inter_train", [*data, "runs/r00/intra_model.pt", "runs/r00/inter_labels.npy"],
                             {"runs/r00/model.pt": (MODEL_BYTES, True), "metrics/inter_train.json": (100, False)}),
    }}


def write_sparse(path: Path, size: int) -> None:
    """A file of `size` zero bytes that takes no time to write; its content matters to no timing,
    since DVC hashes it once, untimed, and then knows it by its size and modification time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.truncate(size)


def make_project(folder: Path, scale: dict, dvc: str) -> dict:
    """A git + DVC project holding one round at `scale`; returns the environment to run DVC in."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    (folder / "writer.py").write_text(WRITER)
    (folder / "dvc.yaml").write_text(yaml.safe_dump(round_stages(scale), sort_keys=False))
    (folder / "params.yaml").write_text("salt: 0\n")
    write_sparse(folder / "data/images.npy", scale["images"] * IMAGE_BYTES)
    (folder / "data/index.csv").write_text("image,pid,camid,split\n" * 10)
    write_sparse(folder / "runs/init/model.pt", MODEL_BYTES)
    for command in (GIT + ["init", "-q"], [dvc, "init", "-q"], GIT + ["add", "-A"], GIT + ["commit", "-qm", "round"]):
        subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
    return env


def timed_repro(folder: Path, env: dict, dvc: str, salt: int) -> dict:
    """Change the round's parameter, run `dvc repro`, and split its wall time into the commands'
    own time and DVC's, per stage."""
    (folder / "params.yaml").write_text(f"salt: {salt}\n")
    (folder / "times.jsonl").unlink(missing_ok=True)
    start = time.time()
    done = subprocess.run([dvc, "repro"], cwd=folder, env=env, capture_output=True, text=True)
    end = time.time()
    if done.returncode != 0:
        raise SystemExit(f"dvc repro failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    commands = [json.loads(line) for line in (folder / "times.jsonl").read_text().splitlines()]
    if [c["stage"] for c in commands] != list(round_stages(SCALES["tiny"])["stages"]):
        raise SystemExit(f"dvc repro ran {[c['stage'] for c in commands]}, not the whole round")
    # The gaps between the commands are DVC's: before a command it checks the stage's
    # dependencies; after one it hashes the outputs, caches those it caches and writes dvc.lock.
    gaps, previous, previous_end = {}, "start", start
    for command in commands:
        gaps[f"{previous} -> {command['stage']}"] = command["start"] - previous_end
        previous, previous_end = command["stage"], command["end"]
    gaps[f"{previous} -> exit"] = end - previous_end
    own = sum(c["end"] - c["start"] for c in commands)
    return {"wall_s": end - start, "commands_s": own, "overhead_s": end - start - own, "gaps_s": gaps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="market1501")
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None, help="where to build the project (default: a temporary folder)")
    args = parser.parse_args()
    dvc = dvc_executable()
    scale = SCALES[args.scale]
    common = {"date": date.today().isoformat(), "commit": git_commit(REPO), "scale": args.scale,
              "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
              "dvc": subprocess.run([dvc, "--version"], capture_output=True, text=True).stdout.strip()}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = Path(tmp)
        env = make_project(folder, scale, dvc)
        timed_repro(folder, env, dvc, salt=0)  # untimed: hashes the image cache and the initial model
        tries = []
        for salt in range(1, args.tries + 1):
            result = timed_repro(folder, env, dvc, salt)
            tries.append(result)
            print(json.dumps({"try": salt, **{k: round(v, 3) if isinstance(v, float) else
                                               {s: round(x, 3) for s, x in v.items()} for k, v in result.items()},
                              **common}), flush=True)
    gaps = {gap: round(statistics.median(t["gaps_s"][gap] for t in tries), 3) for gap in tries[0]["gaps_s"]}
    print(json.dumps({"summary": True, "tries": len(tries),
                      "overhead_s_median": round(statistics.median(t["overhead_s"] for t in tries), 3),
                      "gaps_s_median": gaps, **common}), flush=True)


if __name__ == "__main__":
    main()
