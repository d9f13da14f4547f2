"""The shipped synthetic configuration under several seeds: per-round pseudo-label NMI and final
mAP, rank-1, rank-5 and rank-10, so that a code path's effect on accuracy can be told apart from
seed noise.

    python benchmarks/seed_spread.py --seeds 0 1 2                        # this checkout as it is
    python benchmarks/seed_spread.py --seeds 0 1 2 --set precision=bf16   # with overrides

Each seed runs `dvc repro report` (every round and evaluation, no pictures) in a fresh copy of the
project, with `model.seed` set to the seed: initial weights, sampling and augmentation change,
the dataset does not. `--set key=value` (dotted key, YAML value) goes into the copy's
conf/config.yaml; with `--set evaluate.rerank.enabled=true` the re-ranked scores are recorded
beside the plain ones. Prints one JSON line per seed, then one with the mean and the spread (sample
standard deviation) of every number; benchmarks/results/seed_spread.jsonl holds recorded output.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from datetime import date
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from measure import git_commit, measured  # noqa: E402
from tiny_repo import REPO, copy_project, dvc_executable, merge_config, parse_override, run  # noqa: E402


SCORES = ("mAP", "rank1", "rank5", "rank10")
RERANKED_SCORES = tuple(f"rerank_{key}" for key in SCORES)  # only with evaluate.rerank.enabled: true


def _nmi(path: Path) -> float | None:
    """A round's pseudo-label NMI, or None where the stage did not run (`inter.enabled: false`)."""
    nmi = json.loads(path.read_text()).get("nmi")
    return None if nmi is None else round(nmi, 4)


def one_seed(seed: int, overrides: list[dict], dvc: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        config = yaml.safe_load((REPO / "conf" / "config.yaml").read_text())
        for update in [*overrides, {"model": {"seed": seed}}]:
            merge_config(config, update)
        env = copy_project(repo, config)
        run([dvc, "repro", "extract"], repo, env)
        result = measured([dvc, "repro", "report"], repo, env)
        params = yaml.safe_load((repo / "params.yaml").read_text())
        rounds = list(params["rounds"])
        metrics = repo / "metrics"
        final = json.loads((metrics / "eval.json").read_text())
        nmi = {stage: [_nmi(metrics / "rounds" / r / f"{stage}.json") for r in rounds] for stage in ("intra", "inter")}
    return {"seed": seed, "intra_nmi": nmi["intra"], "inter_nmi": nmi["inter"],
            **{key: final[key] for key in (*SCORES, *RERANKED_SCORES) if key in final},
            "seconds": round(result["seconds"], 1)}


def summary(rows: list[dict]) -> dict:
    def spread(values: list[float]) -> dict:
        return {"mean": round(statistics.fmean(values), 4),
                "std": round(statistics.stdev(values), 4) if len(values) > 1 else None}

    out = {key: spread([row[key] for row in rows]) for key in (*SCORES, *RERANKED_SCORES) if key in rows[0]}
    for key in ("intra_nmi", "inter_nmi"):
        out[key] = [None if None in values else spread(list(values)) for values in zip(*(row[key] for row in rows))]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[],
                        metavar="KEY=VALUE", help="override in conf/config.yaml, e.g. precision=bf16")
    args = parser.parse_args()
    dvc = dvc_executable()
    commit = git_commit(REPO)
    # The thread count changes float rounding, and from random weights rounding changes the run.
    context = {"overrides": args.overrides, "date": date.today().isoformat(), "commit": commit,
               "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    rows = []
    for seed in args.seeds:
        rows.append(one_seed(seed, args.overrides, dvc))
        print(json.dumps({**rows[-1], **context}), flush=True)
    print(json.dumps({"seeds": args.seeds, "summary": summary(rows), **context}), flush=True)


if __name__ == "__main__":
    main()
