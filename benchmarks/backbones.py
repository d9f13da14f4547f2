"""The backbones side by side on the shipped synthetic configuration: final mAP and rank-1, time
per round and peak memory, each from a real `dvc repro` in a fresh copy of the project.

    python benchmarks/backbones.py                       # every backbone
    python benchmarks/backbones.py resnet18_aibn mobilenet_v2

For each backbone the copy's conf/config.yaml gets `model.backbone: <name>` (random initialisation,
as shipped), then `dvc repro evaluate@init` (init + scoring the untrained model) and `dvc repro report`
(every round, the other evaluations, the report) are timed separately. "per round" is the second
time divided by the number of rounds, so it includes DVC's own start-up and the evaluations that
fall inside the rounds. Peak memory is the largest resident set of any one process (`ru_maxrss`).
Prints one JSON line per backbone; benchmarks/results/backbones.jsonl holds recorded output.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from measure import git_commit, measured  # noqa: E402
from tiny_repo import REPO, copy_project, dvc_executable, run  # noqa: E402

from iics.models import BACKBONES, build_backbone  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backbones", nargs="*", default=list(BACKBONES), choices=BACKBONES, metavar="BACKBONE")
    args = parser.parse_args()
    dvc = dvc_executable()
    commit = git_commit(REPO)
    for name in args.backbones:
        with tempfile.TemporaryDirectory() as tmp:
            repo = Path(tmp)
            env = copy_project(repo, {"model": {"backbone": name}})
            run([dvc, "repro", "extract"], repo, env)
            start = measured([dvc, "repro", "evaluate@init"], repo, env)
            rounds = measured([dvc, "repro", "report"], repo, env)
            params = yaml.safe_load((repo / "params.yaml").read_text())
            final = json.loads((repo / "metrics" / "eval.json").read_text())
            before = json.loads((repo / "metrics" / "rounds" / "init" / "eval.json").read_text())
        num_rounds = len(params["rounds"])
        model = build_backbone(name)
        print(json.dumps({
            "backbone": name,
            "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "feature_dim": model.feature_dim,
            "mAP": final["mAP"], "rank1": final["rank1"], "init_mAP": before["mAP"],
            "rounds": num_rounds,
            "init_and_first_eval_s": round(start["seconds"], 1),
            "per_round_s": round(rounds["seconds"] / num_rounds, 1),
            "peak_rss_mib": round(max(start["peak_kib"], rounds["peak_kib"]) / 1024),
            "input": f"{params['dataset']['height']}x{params['dataset']['width']}",
            "device": "cuda" if torch.cuda.is_available() else "cpu", "torch": torch.__version__, "date": date.today().isoformat(), "commit": commit,
            "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
        }), flush=True)


if __name__ == "__main__":
    main()
