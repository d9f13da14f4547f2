"""Stage `report`: per-round curves (metrics/curves/*.csv) and the final metrics/eval.json.

The final result is the LAST round's model: no round is selected on the test set. The eval
curve holds exactly the rounds params.yaml's `evaluations` lists.
"""
from __future__ import annotations

import json

import pandas as pd
from common import METRICS, load_params, round_number, write_json


def read(round_id: str, name: str) -> dict:
    """metrics/rounds/<round_id>/<name>.json, or {} when there is none. A file that is not a
    JSON object (cut short, say) ends the stage in one line naming it."""
    path, name = METRICS / "rounds" / round_id / f"{name}.json", f"metrics/rounds/{round_id}/{name}.json"
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SystemExit(f"{name}: not valid JSON ({error}); rerun the stage that writes it") from None
    if not isinstance(values, dict) or not values:
        raise SystemExit(f"{name}: expected a JSON object of metrics, got {values!r}; rerun the stage that "
                         "writes it")
    return values


def require(values: dict, round_id: str, name: str, stage: str, keys: tuple[str, ...]) -> dict:
    """`values` read from metrics/rounds/<round_id>/<name>.json, which its `stage` writes; one of
    `keys` missing is a one-line exit."""
    lacking = [key for key in keys if key not in values]
    if lacking:
        raise SystemExit(f"metrics/rounds/{round_id}/{name}.json: holds no {', '.join(lacking)} (keys "
                         f"{sorted(values)}); rerun its {stage} stage")
    return values


def read_listed(round_id: str, name: str, listed_in: str, stage: str, keys: tuple[str, ...] = ()) -> dict:
    """`read`, for a file params.yaml's `listed_in` says exists (every stage writes its file, also
    when it has nothing to do: `{"enabled": false}`, `{"evaluated": false, ...}`): missing, or
    without one of `keys`, is a one-line exit."""
    values = read(round_id, name)
    if not values:
        raise SystemExit(f"metrics/rounds/{round_id}/{name}.json missing: params.yaml `{listed_in}` lists "
                         f"{round_id!r} (run its {stage} stage)")
    return require(values, round_id, name, stage, keys)


def checked_scores(values: dict, round_id: str) -> dict:
    """A round's eval.json `values`, checked: `evaluated` and, when true, mAP and the ranks."""
    require(values, round_id, "eval", "evaluate", ("evaluated",))
    # the keys iics.evaluation.evaluate gives with its default ranks (not imported: it brings torch)
    keys = ("mAP", "rank1", "rank5", "rank10") if values["evaluated"] else ("reason",)
    return require(values, round_id, "eval", "evaluate", keys)


def main() -> None:
    params = load_params()
    rounds = list(params["rounds"])
    clusters, quality, curve = [], [], []
    for round_id in rounds:
        t = params["rounds"][round_id]["t"]
        intra = read_listed(round_id, "intra", "rounds", "intra_cluster", ("clusters_per_camera",))
        inter = read_listed(round_id, "inter", "rounds", "inter_affinity", ("enabled",))
        if inter["enabled"]:
            require(inter, round_id, "inter", "inter_affinity", ("num_clusters",))
        row = {"round": t, "intra_total": sum(intra["clusters_per_camera"].values())}
        row.update({f"intra_{cam}": n for cam, n in intra["clusters_per_camera"].items()})
        if inter["enabled"]:
            row["inter"] = inter["num_clusters"]
        clusters.append(row)
        for stage, values in (("intra", intra), ("inter", inter)):
            if "nmi" in values:
                quality.append({"round": t, "stage": stage, **{k: values[k] for k in (
                    "nmi", "ari", "pairwise_precision", "pairwise_recall")}})
    # Only the evaluations params.yaml lists: metrics/rounds/ may still hold the eval.json of a
    # round an earlier schedule evaluated, which is no part of this run's curve.
    for round_id in params["evaluations"]:
        values = checked_scores(read_listed(round_id, "eval", "evaluations", "evaluate"), round_id)
        if values["evaluated"]:
            t = -1 if round_id == "init" else round_number(params, round_id)
            curve.append({"round": t, **{k: v for k, v in values.items() if k != "evaluated"}})
    final = read(rounds[-1], "eval")  # every file is read and checked before anything is written
    if not final:
        raise SystemExit(f"metrics/rounds/{rounds[-1]}/eval.json missing: the last round must be evaluated")
    checked_scores(final, rounds[-1])
    curves = METRICS / "curves"
    curves.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(clusters).to_csv(curves / "clusters.csv", index=False)
    quality_frame = pd.DataFrame(quality)
    for stage in ("intra", "inter"):
        part = quality_frame[quality_frame["stage"] == stage].drop(columns="stage") if len(quality_frame) else quality_frame
        part.to_csv(curves / f"{stage}_quality.csv", index=False)
    pd.DataFrame(curve).to_csv(curves / "eval.csv", index=False)
    write_json(METRICS / "eval.json", final)
    if final["evaluated"]:
        print("final (last round) " + "  ".join(f"{k} {v:.2f}" for k, v in final.items() if k != "evaluated"))
    else:
        print(f"final (last round): not evaluated, {final['reason']}")


if __name__ == "__main__":
    main()
