"""Copies of this project in their own git repo (the tiny test configuration, or the shipped one):
shared by the end-to-end tests and the benchmarks."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
TINY = {
    "dataset": {"height": 32, "width": 16},
    "synthetic": {"train_ids": 16, "test_ids": 10, "cameras": 2, "cameras_per_id": 2, "images_per_camera": 3,
                  "height": 32, "width": 16, "distractors": 4, "junk": 2},
    "model": {"backbone": "resnet18"},
    "features": {"batch_size": 64},
    "intra": {"epochs": 1, "batch_per_camera": 4},
    "inter": {"epochs": 1, "ids_per_batch": 4, "images_per_id": 2},
    "augment": {"pad": 2},
}
GIT = ["git", "-c", "user.name=iics", "-c", "user.email=iics@localhost"]


def run(args: list, cwd: Path, env: dict) -> str:
    """Run a command and return its stdout + stderr; fail with their tails when it exits non-zero."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def stage_command(cmd: str) -> tuple[str, list[str]]:
    """The stage script (a path relative to the project) and the arguments of a dvc.yaml `cmd`,
    which runs every stage through the launcher: `python stages/run.py NAME ARG ...`."""
    python, launcher, name, *args = cmd.split()
    if (python, launcher) != ("python", "stages/run.py"):
        raise ValueError(f"not a stage command through stages/run.py: {cmd!r}")
    return f"stages/{name}.py", args


def merge_config(base: dict, update: dict) -> None:
    """Merge nested `update` into `base` in place (each group `update` descends into must exist in `base`)."""
    for key, value in update.items():
        if isinstance(value, dict):
            merge_config(base[key], value)
        else:
            base[key] = value


def parse_override(text: str) -> dict:
    """`a.b=value` -> {"a": {"b": value}}, the value read as YAML (for merge_config)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    update: dict = {}
    node = update
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = yaml.safe_load(value)
    return update


def dvc_executable() -> str:
    dvc = shutil.which("dvc", path=os.path.dirname(sys.executable)) or shutil.which("dvc")
    if dvc is None:
        raise RuntimeError("dvc is not installed (pip install -e .[test] installs it)")
    return dvc


def copy_project(dest: Path, config_update: dict | None = None, rounds: int | None = None, every: int = 1) -> dict:
    """Copy the pipeline into `dest`, merge `config_update` into the copy's conf/config.yaml (so
    `dvc exp run -S` composes from it too), optionally write a `rounds`-round schedule as
    `short`, compose params.yaml, commit it in a fresh git repo and return the environment to
    run dvc in."""
    for name in ("stages", "iics", "conf", ".dvc", "dvc.yaml", ".dvcignore", ".gitignore"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "cache", "tmp", "config.local"))
        else:
            shutil.copy(src, dest / name)
    (dest / "data" / "weights").mkdir(parents=True)  # the init stage depends on the folder
    shutil.copy(REPO / "data" / "weights" / "README.md", dest / "data" / "weights" / "README.md")
    if config_update:
        config = yaml.safe_load((REPO / "conf" / "config.yaml").read_text())
        merge_config(config, config_update)
        (dest / "conf" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # PYTHONPATH: the copy's stages import the copy's iics, whichever checkout is installed.
    env = dict(os.environ, DVC_NO_ANALYTICS="1", IICS_PROGRESS="0", PYTHONPATH=str(dest),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if rounds is not None:
        run([sys.executable, "stages/set_rounds.py", str(rounds), "--every", str(every), "--name", "short", "--force"], dest, env)
    run([sys.executable, "stages/configure.py"], dest, env)
    run(["git", "init", "-q"], dest, env)
    run(GIT + ["add", "-A"], dest, env)
    run(GIT + ["commit", "-qm", "copy of the project"], dest, env)
    return env


def make_tiny_repo(dest: Path, rounds: int, every: int = 1) -> dict:
    """The project in `dest` with the tiny parameters and `rounds` rounds (see copy_project)."""
    return copy_project(dest, TINY, rounds, every)
