"""End to end: `dvc repro` of a tiny configuration in a temporary git repo, then an experiment
with another clustering threshold, then `dvc metrics diff`."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import yaml
from PIL import Image
from tiny_repo import GIT, REPO, dvc_executable, make_tiny_repo, merge_config, run, stage_command


def test_repro_then_experiment_changes_metrics(tmp_path):
    dvc = dvc_executable()
    env = make_tiny_repo(tmp_path, rounds=2)
    run([dvc, "repro"], tmp_path, env)
    first = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert set(first) == {"evaluated", "mAP", "rank1", "rank5", "rank10"} and first["evaluated"] is True
    assert (tmp_path / "metrics" / "curves" / "clusters.csv").is_file()
    for name in ("tsne", "ranking", "curves"):
        with Image.open(tmp_path / "plots" / f"{name}.png") as picture:
            assert picture.format == "PNG" and picture.height > 100
    run([dvc, "plots", "show", "-o", str(tmp_path / "shown")], tmp_path, env)
    assert {p.name for p in (tmp_path / "shown" / "static").iterdir()} >= {
        "workspace_plots_tsne.png", "workspace_plots_ranking.png", "workspace_plots_curves.png"}
    assert "changed" not in run([dvc, "status"], tmp_path, env)
    assert_what_reruns(dvc, tmp_path, env)

    run(GIT + ["add", "-A"], tmp_path, env)
    run(GIT + ["commit", "-qm", "baseline run"], tmp_path, env)
    out = run([dvc, "exp", "run", "-S", "clustering.threshold=0.3"], tmp_path, env)
    assert "Running stage 'extract'" not in out and "Running stage 'synthesize'" not in out
    assert "Running stage 'intra_cluster@r00'" in out
    second = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert second != first
    diff = run([dvc, "metrics", "diff"], tmp_path, env)
    assert "mAP" in diff
    assert_reranked_scores_rerun_only_the_evaluations(dvc, tmp_path, env, second)
    assert_stages_list_params_they_read(tmp_path, env)
    assert_bad_value_stops_the_experiment_in_one_line(dvc, tmp_path, env)
    assert_broken_model_and_features_stop_in_one_line(tmp_path, env)


def assert_reranked_scores_rerun_only_the_evaluations(dvc, repo, env, plain: dict) -> None:
    """`-S evaluate.rerank.enabled=true` on top of the last experiment reruns the evaluations and
    what reads their scores, no training or clustering; the plain scores stay as they were, the
    re-ranked ones come beside them. (The experiment's own `-S` is given again: DVC composes
    params.yaml afresh from conf/ and the overrides of each run.)"""
    out = run([dvc, "exp", "run", "-S", "clustering.threshold=0.3", "-S", "evaluate.rerank.enabled=true"], repo, env)
    ran = {name.split("@")[0] for name in re.findall(r"Running stage '([^']+)'", out)}
    assert "evaluate" in ran and ran <= {"evaluate", "report", "plot_curves"}, ran
    scores = json.loads((repo / "metrics" / "eval.json").read_text())
    assert {key: value for key, value in scores.items() if not key.startswith("rerank_")} == plain
    reranked = {key: value for key, value in scores.items() if key.startswith("rerank_")}
    assert set(reranked) == {"rerank_mAP", "rerank_rank1", "rerank_rank5", "rerank_rank10"}
    assert all(0 <= value <= 100 for value in reranked.values()), reranked


def assert_bad_value_stops_the_experiment_in_one_line(dvc, repo, env) -> None:
    """`dvc exp run -S inter.margin=-1` reruns only the inter_train stages, and the first one stops
    with one line naming params.yaml and the key: no traceback, no training."""
    result = subprocess.run([dvc, "exp", "run", "-S", "inter.margin=-1"], cwd=repo, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "params.yaml: inter.margin must be a number >= 0, got -1" in output
    assert "Traceback" not in output and "Running stage 'intra_train@r00'" not in output


def assert_broken_model_and_features_stop_in_one_line(repo, env) -> None:
    """A model with NaN weights, a checkpoint that is cut short, missing or of another backbone,
    features no cut can use, or a round's array or the index missing or of the wrong size, end
    the stage that meets them with one line naming the stage, the file and what is wrong; the
    stage's output is left as it was."""
    import torch

    def one_line_failure(args: list[str]) -> str:
        result = subprocess.run([sys.executable, *args], cwd=repo, env=env, capture_output=True, text=True)
        output = (result.stdout + result.stderr).strip()
        assert result.returncode != 0 and "Traceback" not in output and len(output.splitlines()) == 1, output
        return output

    model_path, eval_path = repo / "runs" / "r01" / "model.pt", repo / "metrics" / "rounds" / "r01" / "eval.json"
    model_bytes, scores = model_path.read_bytes(), eval_path.read_text()
    checkpoint = torch.load(model_path, weights_only=True)
    weights = checkpoint["state_dict"]
    first_conv = next(key for key in weights if key.endswith("conv1.weight"))
    weights[first_conv] = torch.full_like(weights[first_conv], float("nan"))
    torch.save(checkpoint, model_path)
    output = one_line_failure(["stages/evaluate.py", "r01"])
    assert output.startswith("evaluate r01: runs/r01/model.pt: ") and "NaN or infinite features" in output
    assert eval_path.read_text() == scores
    model_path.write_bytes(model_bytes[: len(model_bytes) // 2])  # a copy cut short
    output = one_line_failure(["stages/evaluate.py", "r01"])
    assert output.startswith("evaluate r01: runs/r01/model.pt: not a readable PyTorch checkpoint, or a truncated one (")
    model_path.write_bytes(model_bytes)
    # A stage run by hand after model.backbone changed (the runs' models are resnet18), or before
    # the stage that writes its model.
    with params_changed(repo, {"model": {"backbone": "mobilenet_v2"}}):
        output = one_line_failure(["stages/evaluate.py", "r01"])
    assert output == ("evaluate r01: runs/r01/model.pt: holds a 'resnet18' backbone but the configuration asks "
                      "for 'mobilenet_v2'")
    model_path.unlink()
    output = one_line_failure(["stages/evaluate.py", "r01"])
    assert output == "evaluate r01: runs/r01/model.pt: checkpoint not found (expected a file written by an earlier stage)"
    assert eval_path.read_text() == scores
    model_path.write_bytes(model_bytes)

    features_path, labels_path = repo / "runs" / "r01" / "features.npy", repo / "runs" / "r01" / "intra_labels.npy"
    features_bytes, labels_bytes = features_path.read_bytes(), labels_path.read_bytes()
    features = np.load(features_path)
    np.save(features_path, np.broadcast_to(features[:1], features.shape))  # every image alike
    with params_changed(repo, {"clustering": {"method": "quantile"}}):
        output = one_line_failure(["stages/intra_cluster.py", "r01"])
    assert output.startswith("intra_cluster r01: runs/r01/features.npy: camera ") and "every distance is 0" in output
    features[5, 3] = np.nan
    np.save(features_path, features)
    output = one_line_failure(["stages/intra_cluster.py", "r01"])
    assert output == "intra_cluster r01: runs/r01/features.npy: features: 1 of " + f"{len(features)} rows hold NaN or infinite values"
    # Left from another dataset (one row short), or not there: the stages that read a round's
    # arrays or the prepared index say which file and what they expected.
    np.save(features_path, features[1:])
    output = one_line_failure(["stages/intra_cluster.py", "r01"])
    assert output == (f"intra_cluster r01: runs/r01/features.npy: holds shape {(len(features) - 1, features.shape[1])}, "
                      f"expected one row for each of the {len(features)} train images in the index (written for "
                      "another dataset or configuration? rerun the stage that writes it)")
    assert labels_path.read_bytes() == labels_bytes
    features_path.write_bytes(features_bytes)
    labels_path.unlink()
    output = one_line_failure(["stages/intra_train.py", "r01", "r00"])
    assert output == "intra_train r01: runs/r01/intra_labels.npy: not found (expected a file written by an earlier stage)"
    labels_path.write_bytes(labels_bytes)
    name = yaml.safe_load((repo / "params.yaml").read_text())["dataset"]["name"]
    index_path = repo / "data" / name / "prepared" / "index.csv"
    index_path.rename(index_path.with_name("moved.csv"))
    output = one_line_failure(["stages/intra_cluster.py", "r01"])
    assert output == f"intra_cluster r01: data/{name}/prepared/index.csv: index not found (run the extract stage first)"
    index_path.with_name("moved.csv").rename(index_path)
    images_path = index_path.with_name("images.npy")
    images_path.rename(images_path.with_name("moved.npy"))
    output = one_line_failure(["stages/evaluate.py", "r01"])
    assert output == (f"evaluate r01: data/{name}/prepared/images.npy: no such image cache (expected a .npy written "
                      "by build_image_cache)")
    images_path.with_name("moved.npy").rename(images_path)
    assert eval_path.read_text() == scores


def assert_what_reruns(dvc, repo, env) -> None:
    """A stage reruns for what it reads and nothing else: a new file in data/weights/ reruns
    `init`; an inter-camera cluster count reruns `inter_affinity`, not `intra_cluster`."""
    extra = repo / "data" / "weights" / "other.pth"
    extra.write_bytes(b"weights")
    assert "init:" in run([dvc, "status", "init"], repo, env)
    extra.unlink()
    inter_count = yaml.safe_load((repo / "params.yaml").read_text())["clustering"]["inter_count"]
    with params_changed(repo, {"clustering": {"inter_count": inter_count + 1}}):
        status = run([dvc, "status"], repo, env)
    assert "inter_affinity@r00" in status and "intra_cluster@" not in status
    assert "changed" not in run([dvc, "status"], repo, env)


@contextmanager
def params_changed(repo, update: dict):
    """params.yaml with nested `update` merged in, restored afterwards."""
    params_file = repo / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    merge_config(params, update)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        yield
    finally:
        params_file.write_text(original)


def read_is_listed(path: str, listed: list[str], deps: list[str], args: list[str], dataset: str) -> bool:
    """Whether a stage's change-tracking covers the params key `path` it read: a key it lists in
    dvc.yaml, or one fixed by its deps and command."""
    if any(path == key or path.startswith(key + ".") for key in listed):
        return True
    if path == "dataset.name":  # interpolated into the stage's data paths
        return any(dep.startswith(f"data/{dataset}/") for dep in deps)
    # A round's own schedule entry: its key is in the command, `prev` too, and set_rounds.py
    # writes t as the key's number.
    return any(path == f"rounds.{arg}" or path.startswith(f"rounds.{arg}.") for arg in args)


def assert_stages_list_params_they_read(repo, env) -> None:
    """Every params.yaml key a stage script reads is among the params dvc.yaml lists for it (or
    is fixed by its deps and command), so that changing it reruns the stage. One instance of
    each stage (the last round of a `foreach`) is rerun under tests/params_trace.py, on the
    outputs the pipeline left, and the clustering and evaluate stages again with the settings that
    take their other code paths (each clustering method, no inter-camera stage, evaluation with and
    without re-ranking)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    last_instance = {name.split("@")[0]: name for name in lock}
    dataset = yaml.safe_load((repo / "params.yaml").read_text())["dataset"]["name"]
    variants = [{"clustering": {"method": "count"}}, {"clustering": {"method": "quantile"}}]
    runs = [(name, {}) for name in last_instance.values()]
    runs += [(last_instance[stage], variant) for stage in ("intra_cluster", "inter_affinity") for variant in variants]
    runs += [(last_instance["inter_affinity"], {"inter": {"enabled": False}})]
    runs += [(last_instance["evaluate"], {"evaluate": {"rerank": {"enabled": flag}}}) for flag in (False, True)]
    trace = repo / "trace.json"
    unlisted = {}
    for name, variant in runs:
        stage = lock[name]
        listed = list(stage.get("params", {}).get("params.yaml", {}))
        deps = [dep["path"] for dep in stage.get("deps", [])]
        script, args = stage_command(stage["cmd"])
        with params_changed(repo, variant):
            run([sys.executable, str(REPO / "tests" / "params_trace.py"), str(trace), script, *args], repo, env)
        read = json.loads(trace.read_text())
        assert read or not listed, f"{name}: the trace saw none of its params read"
        missing = [path for path in read if not read_is_listed(path, listed, deps, args, dataset)]
        if missing:
            unlisted[f"{name} {variant or ''}".strip()] = missing
    assert not unlisted, f"stages read params that dvc.yaml does not list for them: {unlisted}"


def write_footage(raw, identities: int = 8, cameras: int = 2, per_camera: int = 2) -> None:
    """Own-footage crops (an images/ folder and images.csv with image, camid only): each identity
    a distinct colour pattern, seen by every camera."""
    rng = np.random.default_rng(0)
    rows = ["image,camid"]
    for person in range(identities):
        colours = rng.integers(0, 256, size=(2, 3))
        for camera in range(1, cameras + 1):
            for shot in range(per_camera):
                pixels = np.empty((32, 16, 3), dtype=np.uint8)
                pixels[:16], pixels[16:] = colours[0], colours[1]
                pixels = np.clip(pixels + rng.normal(0, 8, pixels.shape), 0, 255).astype(np.uint8)
                name = f"cam{camera}/p{person}_{shot}.png"
                (raw / "images" / name).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(raw / "images" / name)
                rows.append(f"{name},{camera}")
    (raw / "images.csv").write_text("\n".join(rows) + "\n")


def test_own_footage_preset_without_test_split(tmp_path):
    """`dvc exp run -S dataset=footage` composes the preset through DVC's Hydra integration;
    with no query/gallery the metrics say that nothing was evaluated."""
    dvc = dvc_executable()
    env = make_tiny_repo(tmp_path, rounds=1)
    write_footage(tmp_path / "data" / "cams" / "raw")
    tiny = ["dataset.name=cams", "dataset.height=32", "dataset.width=16", "model.backbone=resnet18",
            "model.weights=null", "intra.epochs=1", "intra.batch_per_camera=4", "inter.epochs=1",
            "inter.ids_per_batch=4", "inter.images_per_id=2", "augment.pad=2", "schedule=short"]
    out = run([dvc, "exp", "run", "-S", "dataset=footage", *[a for o in tiny for a in ("-S", o)]], tmp_path, env)
    assert "WARNING: model.weights is null" in out
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert params["dataset"] == {"name": "cams", "layout": "csv", "height": 32, "width": 16, "subset": None}
    assert params["clustering"]["method"] == "quantile"
    dataset = json.loads((tmp_path / "metrics" / "dataset.json").read_text())
    assert dataset["splits"] == {"train": {"images": 32, "ids": 0, "cameras": 2}}
    assert dataset["evaluation"] is False and dataset["train_identities"] is False
    final = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert final == {"evaluated": False, "reason": "the dataset has no query/gallery images with identities"}
    intra = json.loads((tmp_path / "metrics" / "rounds" / "r00" / "intra.json").read_text())
    assert set(intra) == {"clusters_per_camera"} and len(intra["clusters_per_camera"]) == 2
    with Image.open(tmp_path / "plots" / "ranking.png") as note:  # nothing to rank: a one-line note
        assert note.size == (480, 60)
    assert (tmp_path / "plots" / "tsne.png").is_file()

    # The trained model embeds the crops at the size it was trained at, which its file records.
    out = run([sys.executable, "-m", "iics.embedding", "runs/r00/model.pt", "data/cams/raw/images", "--out", "cams.npz"],
              tmp_path, env)
    assert "32 crops from data/cams/raw/images at 32 x 16 -> cams.npz" in out
    with np.load(tmp_path / "cams.npz") as saved:
        assert saved["features"].shape == (32, 512) and saved["names"][0] == "cam1/p0_0.png"
