"""The benchmarks: their synthetic data plans match the dataset sizes they claim to stand for, the
seed summary, the commit a result is recorded at, round_speed.py runs a round end to end and
evaluation_speed.py an evaluation, the
neighbour shares of rerank_neighbours.py, the profile totals of train_profile.py, the operation
counts of op_count.py, the split of a round into commands and DVC's gaps of
dvc_round_overhead.py, and that benchmarks/cuda_graph.patch still applies."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import dvc_round_overhead  # noqa: E402
import extract_scale  # noqa: E402
import gpu_all  # noqa: E402
import op_count  # noqa: E402
import rerank_neighbours  # noqa: E402
import round_speed  # noqa: E402
import seed_spread  # noqa: E402
import train_profile  # noqa: E402
from iics import augment  # noqa: E402
from tiny_repo import GIT, REPO, parse_override, run  # noqa: E402


@pytest.mark.parametrize("name", ["market1501", "msmt17"])
def test_plan_has_the_dataset_counts(name):
    scale = round_speed.SCALES[name]
    pids, cams = round_speed.plan(scale, seed=0)
    assert len(pids) == scale.images
    assert len(np.unique(pids)) == scale.identities and set(np.unique(cams)) == set(range(1, scale.cameras + 1))
    cameras_per_id = {pid: len(np.unique(cams[pids == pid])) for pid in np.unique(pids)[:50]}
    assert set(cameras_per_id.values()) == {scale.cameras_per_id}
    assert np.array_equal(pids, round_speed.plan(scale, seed=0)[0])
    if scale.images_per_camera is not None:  # the smallest camera sets the intra-camera epoch
        assert tuple(np.unique(cams, return_counts=True)[1]) == scale.images_per_camera


def test_extract_scale_writes_a_zip_that_extract_accepts(tmp_path, monkeypatch):
    """The generated Market-1501-scale zip passes every check `extract` makes (counts, names, a
    cross-camera match for the queries), with its md5 registered as the benchmark does. It
    did not once evaluability was checked: each identity's query and gallery images shared a camera."""
    import dataclasses

    from iics import datasets
    from iics.checksum import file_digest

    release = datasets.OFFICIAL["market1501"]
    raw = tmp_path / "raw"
    raw.mkdir()
    extract_scale.write_market(raw / release.zip_name, extract_scale.jpeg_pool(np.random.default_rng(0)))
    monkeypatch.setitem(datasets.OFFICIAL, "market1501",
                        dataclasses.replace(release, md5s=(file_digest(raw / release.zip_name, "md5"),)))
    _, index = datasets.index_dataset(raw, "market1501", "market")
    assert (index["split"] == "train").sum() == 12936 and (index["split"] == "gallery").sum() == 15913


def test_seed_spread_overrides_and_summary():
    assert parse_override("intra.lr=0.002") == {"intra": {"lr": 0.002}}
    assert parse_override("precision=bf16") == {"precision": "bf16"}
    with pytest.raises(Exception, match="KEY=VALUE"):
        parse_override("precision")
    rows = [{"mAP": 10.0, "rank1": 5.0, "rank5": 20.0, "rank10": 30.0, "intra_nmi": [0.5, 0.7], "inter_nmi": [0.4, 0.6]},
            {"mAP": 14.0, "rank1": 9.0, "rank5": 21.0, "rank10": 30.0, "intra_nmi": [0.7, 0.7], "inter_nmi": [0.6, 0.8]}]
    out = seed_spread.summary(rows)
    assert out["mAP"] == {"mean": 12.0, "std": round(2 ** 0.5 * 2, 4)}
    assert out["intra_nmi"][0] == {"mean": 0.6, "std": round(0.02 ** 0.5, 4)}
    assert out["intra_nmi"][1] == {"mean": 0.7, "std": 0.0}
    assert out["rank5"] == {"mean": 20.5, "std": round(0.5 ** 0.5, 4)}
    assert out["rank10"] == {"mean": 30.0, "std": 0.0}
    assert "rerank_mAP" not in out
    reranked = [{**row, "rerank_mAP": value} for row, value in zip(rows, (11.0, 12.0))]  # evaluate.rerank.enabled
    assert seed_spread.summary(reranked)["rerank_mAP"] == {"mean": 11.5, "std": round(0.5 ** 0.5, 4)}
    disabled = [{**row, "inter_nmi": [None, None]} for row in rows]  # inter.enabled: false
    assert seed_spread.summary(disabled)["inter_nmi"] == [None, None]


def test_clustering_speed_inputs_have_the_claimed_shape():
    import clustering_speed

    scale = clustering_speed.Scale(images=50, identities=7, cameras=3)
    features, probabilities, cams = clustering_speed.make_inputs(scale, seed=0)
    assert features.shape == (50, clustering_speed.FEATURE_DIM)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(50))
    assert probabilities.shape == (50, 3 * clustering_speed.INTRA_COUNT)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.full((50,), 3.0))
    assert set(cams.tolist()) <= {0, 1, 2} and len(cams) == 50
    assert clustering_speed.make_inputs(scale, seed=0, with_probabilities=False)[1] is None
    real = clustering_speed.Scale(images=10, identities=3, cameras=3, images_per_camera=(2, 5, 3))
    _, _, cams = clustering_speed.make_inputs(real, seed=0)
    assert np.bincount(cams).tolist() == [2, 5, 3] and cams.tolist() != sorted(cams.tolist())
    market = clustering_speed.SCALES["market1501"]
    assert sum(market.images_per_camera) == market.images and len(market.images_per_camera) == market.cameras


def test_git_commit_is_dirty_only_for_code_changes(tmp_path):
    from measure import git_commit

    assert git_commit(tmp_path) is None
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    files = {"code.py": "x = 1\n", "NOTES.md": "a\n", "dvc.lock": "a\n", "benchmarks/results/speed.jsonl": "{}\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = dict(os.environ)
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "x"]):
        run([*GIT, *args], tmp_path, env)
    head = run(["git", "rev-parse", "--short", "HEAD"], tmp_path, env).strip()
    (tmp_path / "benchmarks" / "results" / "speed.jsonl").write_text("")  # what `> speed.jsonl` does
    (tmp_path / "NOTES.md").write_text("b\n")
    (tmp_path / "dvc.lock").write_text("b\n")
    assert git_commit(tmp_path) == head
    (tmp_path / "code.py").write_text("x = 2\n")
    first = git_commit(tmp_path)
    assert re.fullmatch(rf"{head}-dirty-[0-9a-f]{{8}}", first)
    assert git_commit(tmp_path) == first  # the same change, the same digits
    (tmp_path / "code.py").write_text("x = 3\n")
    assert git_commit(tmp_path) not in (first, head)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "new.py").write_text("y = 1\n")  # a file a patch adds: untracked, not ignored
    added = git_commit(tmp_path)
    assert added.startswith(f"{head}-dirty-") and added != first
    (tmp_path / "new.py").write_text("y = 2\n")
    assert git_commit(tmp_path) != added
    (tmp_path / ".gitignore").write_text("new.py\n.gitignore\n")
    assert git_commit(tmp_path) == head  # ignored files are not code the run used


def test_git_commit_without_git_installed_is_none(tmp_path, monkeypatch):
    from measure import git_commit

    monkeypatch.setenv("PATH", str(tmp_path))  # no git on it
    assert git_commit(REPO) is None


def test_round_speed_runs_a_whole_round_on_the_cpu(tmp_path):
    """The GPU benchmark end to end at toy scale: a stage whose arguments or outputs drifted from
    what round_speed.py calls would otherwise only show once a GPU is lent."""
    command = [sys.executable, str(Path(round_speed.__file__)), "--scale", "tiny", "--workdir", str(tmp_path),
               "--set", "intra.epochs=1", "--set", "inter.epochs=1"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["stage"] for row in rows] == [stage for stage, _ in round_speed.ROUND] + ["round (without init)"]
    tiny = round_speed.SCALES["tiny"]
    assert {row["train_images"] for row in rows} == {tiny.images}
    images = {row["stage"]: row["images"] for row in rows[:-1]}
    smallest_camera = np.unique(round_speed.plan(tiny, seed=0)[1], return_counts=True)[1].min()
    assert images["intra_train"] == (smallest_camera // 4) * tiny.cameras * 4  # 1 epoch, 4 images per camera
    assert images["inter_train"] > 0 and images["inter_train"] % (4 * 2) == 0  # whole 4 x 2 PK batches
    assert images["init"] is None and images["features"] == images["inter_affinity"] == tiny.images
    assert all(row["seconds"] > 0 for row in rows)
    assert rows[-1]["seconds"] == pytest.approx(sum(row["seconds"] for row in rows[1:-1]), abs=0.02)
    # Each stage imports torch (over 100 MiB); the launcher alone, whose process tree the
    # stage's child of the warm process is not in, holds about 15.
    assert all(row["peak_rss_mib"] > 100 for row in rows[:-1])
    assert all((row["peak_gpu_gib"] is None) != torch.cuda.is_available() for row in rows[1:-1])


def test_dvc_round_overhead_splits_a_round_into_commands_and_gaps(tmp_path):
    """The DVC overhead benchmark reruns the whole round on each try, its files at the sizes
    claimed, and what it calls DVC's time is the wall time less the commands' own, gap by gap."""
    from tiny_repo import dvc_executable

    dvc, scale = dvc_executable(), dvc_round_overhead.SCALES["tiny"]
    env = dvc_round_overhead.make_project(tmp_path, scale, dvc)
    dvc_round_overhead.timed_repro(tmp_path, env, dvc, salt=0)
    model = (tmp_path / "runs/r00/model.pt").read_bytes()
    result = dvc_round_overhead.timed_repro(tmp_path, env, dvc, salt=1)
    assert (tmp_path / "runs/r00/model.pt").read_bytes() != model  # fresh outputs to hash and cache
    assert (tmp_path / "runs/r00/features.npy").stat().st_size == scale["train"] * 2048 * 4
    assert (tmp_path / "runs/r00/model.pt").stat().st_size == dvc_round_overhead.MODEL_BYTES
    assert list(result["gaps_s"]) == ["start -> features", "features -> intra_cluster", "intra_cluster -> intra_train",
                                      "intra_train -> inter_affinity", "inter_affinity -> inter_train",
                                      "inter_train -> exit"]
    assert all(gap > 0 for gap in result["gaps_s"].values())
    assert result["overhead_s"] == pytest.approx(sum(result["gaps_s"].values()), abs=1e-6)
    assert result["wall_s"] == pytest.approx(result["commands_s"] + result["overhead_s"], abs=1e-6)


def test_measured_takes_the_peak_memory_a_stage_reports(tmp_path):
    """A stage run through stages/run.py is no descendant of the measured command: its own report
    at exit counts, where it exceeds what the command's process tree used."""
    from measure import measured

    report = measured([sys.executable, "-c", "import sys; print('peak host memory: 123456 MiB', file=sys.stderr)"],
                      tmp_path, dict(os.environ))
    assert report["peak_kib"] == 123456 * 1024
    assert measured([sys.executable, "-c", "pass"], tmp_path, dict(os.environ))["peak_kib"] < 123456


def test_evaluation_speed_ranks_the_features_it_generates():
    """At its small scale (on the CPU here): each phase is timed, and the generated features rank
    neither perfectly nor at chance, so the ranking has work to do at every position."""
    command = [sys.executable, str(Path(gpu_all.REPO / "benchmarks" / "evaluation_speed.py")), "--scale", "small",
               "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {row["phase"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert set(rows) == {"cosine distances", "ranking: mAP and CMC", "peak memory", "metrics"}
    assert rows["cosine distances"]["seconds"] > 0 and rows["ranking: mAP and CMC"]["seconds"] > 0
    assert {rows["metrics"]["queries"], rows["metrics"]["gallery"]} == {500, 3000}
    assert 20 < rows["metrics"]["mAP"] < 95


def test_gpu_all_keeps_json_lines_and_the_rest_apart(tmp_path):
    script = "import json, sys; print(json.dumps({'stage': 'a', 'seconds': 1.5})); print('table'); print('oops', file=sys.stderr)"
    assert gpu_all.run_step("first", [sys.executable, "-c", script], tmp_path) == 0
    assert gpu_all.run_step("second", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path) == 3
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert rows == [{"step": "first", "stage": "a", "seconds": 1.5}]
    log = (tmp_path / "log.txt").read_text()
    assert "table" in log and "oops" in log and "== second: exit 3" in log
    assert set(gpu_all.STEPS) >= {"round_market1501", "round_msmt17", "clustering_market1501", "clustering_msmt17"}
    for command in gpu_all.STEPS.values():  # every step names a file of the repository
        assert (gpu_all.REPO / next(arg for arg in command[1:] if arg.endswith(".py"))).is_file()


def test_rerank_neighbours_counts_a_hand_worked_case():
    # q0 (person 1, camera 1), q1 (2, 1), then gallery g0 (1, 2), g1 (2, 2), g2 (3, 1). With k1 = 2,
    # q0's nearest other images are q1 and g2, q1's are q0 and g1; each image is nearest itself.
    dist = torch.tensor([[0.0, 0.1, 0.3, 0.5, 0.2],
                         [0.1, 0.0, 0.6, 0.2, 0.4],
                         [0.3, 0.6, 0.0, 0.9, 0.9],
                         [0.5, 0.2, 0.9, 0.0, 0.9],
                         [0.2, 0.4, 0.9, 0.9, 0.0]])
    pids, cams = np.array([1, 2, 1, 2, 3]), np.array([1, 1, 2, 2, 1])
    shares = rerank_neighbours.neighbour_shares(dist, pids, cams, num_query=2, k1=2)
    assert shares == {"k1": 2, "share_queries": 0.5, "share_same_camera": 0.75, "share_same_person": 0.25,
                      "same_person_images_per_query": 1.0}
    assert rerank_neighbours.neighbour_shares(dist, pids, cams, num_query=2, k1=1)["share_queries"] == 1.0
    with pytest.raises(ValueError, match="k1=5"):
        rerank_neighbours.neighbour_shares(dist, pids, cams, num_query=2, k1=5)


def test_train_profile_counts_device_time_once():
    # An operator (a CPU event) carries its kernels' device time as its own too; the kernel event
    # carries it again, and so does a device-side user annotation around them. The totals count
    # each microsecond of device time once, as the profiler's table does.
    from torch.autograd import DeviceType

    events = [SimpleNamespace(device_type=DeviceType.CPU, self_cpu_time_total=30.0, self_device_time_total=5.0),
              SimpleNamespace(device_type=DeviceType.CUDA, self_cpu_time_total=0.0, self_device_time_total=5.0),
              SimpleNamespace(device_type=DeviceType.CPU, self_cpu_time_total=10.0, self_device_time_total=0.0),
              # the optimiser's user annotation on the device spans its kernels: their time again
              SimpleNamespace(device_type=DeviceType.CUDA, self_cpu_time_total=0.0, self_device_time_total=5.0,
                              is_user_annotation=True)]
    assert train_profile.profile_totals(events) == (40.0, 5.0)


def test_op_count_counts_work_not_views():
    counter = op_count.OperationCounter()
    a, b = torch.ones(2, 3), torch.ones(2, 3)
    with counter:
        counter.part = "x"
        c = (a + b).view(3, 2).t()  # one addition; the view and the transpose launch nothing
        c.mul_(2)
    assert counter.counts == {"x": 2}


def test_op_count_splits_a_step_by_part():
    args = SimpleNamespace(height=32, width=16, cameras=3, batch_per_camera=2)
    plain, aibn = (op_count.count_step(name, args) for name in ("resnet18", "resnet18_aibn"))
    assert "ops: forward, AIBN" not in plain and aibn["ops: forward, AIBN"] > 0
    assert aibn["ops: backward"] > plain["ops: backward"]
    for row in (plain, aibn):
        parts = sum(n for key, n in row.items() if key.startswith("ops: "))
        assert row["ops per intra-camera step"] == parts and row["ops: optimiser step"] > 0
    # a step as every step of an epoch but the first: what the first makes (the constants cached
    # per device, the momentum buffers) is not in it, so a count from a cold start is the same again
    augment._positions.cache_clear()
    assert op_count.count_step("resnet18_aibn", args) == op_count.count_step("resnet18_aibn", args)
    inter = op_count.count_inter_step("resnet18_aibn", SimpleNamespace(height=32, width=16, ids_per_batch=2, images_per_id=2))
    assert inter["batch"] == 4 and inter["ops: forward, AIBN"] > 0
    assert inter["ops per inter-camera step"] == sum(n for key, n in inter.items() if key.startswith("ops: "))


def test_gpu_all_measures_the_cuda_graph_patch_in_a_patched_copy(tmp_path):
    """The graph_ steps run in a copy of the tree with the patch applied: the copy holds the patched
    code and the recorded commit says so, while the checkout stays as it was."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    before = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    copy = gpu_all.patched_tree(tmp_path / "patched")
    assert not (copy / "runs").exists() and not (copy / ".venv").exists() and not (copy / ".dvc" / "cache").exists()
    assert "cuda_graphed" in (copy / "iics" / "training.py").read_text()
    assert "cuda_graphed" not in (REPO / "iics" / "training.py").read_text()
    commit = gpu_all.git_commit(copy)
    assert commit is not None and "-dirty-" in commit, commit
    assert subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout == before
    assert {"graph_cuda_tests", "graph_round_market1501"} <= set(gpu_all.STEPS)


def test_gpu_all_without_git_reports_the_graph_steps_and_goes_on(tmp_path, monkeypatch):
    """A machine without git cannot make the patched copy: the graph_ steps are reported as failed
    in the log and the exit status, not a traceback that ends the call's remaining steps."""
    def no_git(dest):
        raise FileNotFoundError(2, "No such file or directory", "git")

    monkeypatch.setattr(gpu_all, "patched_tree", no_git)
    monkeypatch.setattr(sys, "argv", ["gpu_all.py", str(tmp_path), "--steps", "graph_cuda_tests", "graph_round_market1501"])
    with pytest.raises(SystemExit) as exit_status:
        gpu_all.main()
    assert exit_status.value.code == 2
    log = (tmp_path / "log.txt").read_text()
    assert "== graph_cuda_tests: cuda_graph.patch does not apply: [Errno 2] No such file or directory: 'git'" in log


def test_cuda_graph_patch_still_applies():
    """benchmarks/cuda_graph.patch (training steps replayed from CUDA graphs, kept off main until
    it has run on a GPU: BENCHMARKS.md says why) applies to this tree. A change to a file it
    touches that breaks it fails here, not when a GPU session next wants to measure it."""
    patch = "benchmarks/cuda_graph.patch"
    if shutil.which("git") is None:
        pytest.skip(f"git is not installed, so {patch} cannot be checked")
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=REPO, capture_output=True, text=True)
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != REPO.resolve():
        why = top.stderr.strip() or f"its work tree is {top.stdout.strip()}"
        pytest.skip(f"{REPO} is not the root of a git work tree ({why}), so {patch} cannot be checked")
    check = subprocess.run(["git", "apply", "--check", patch], cwd=REPO, capture_output=True, text=True)
    if check.returncode != 0:
        applied = subprocess.run(["git", "apply", "--check", "--reverse", patch], cwd=REPO, capture_output=True)
        if applied.returncode == 0:
            pytest.skip(f"{patch} is applied in this tree already (it reverses cleanly)")
    assert check.returncode == 0, (
        f"{patch} no longer applies: rebuild it on a branch (git apply --3way, resolve, commit, then "
        f"git diff <base>.. -- iics tests > {patch}):\n{check.stderr}")
