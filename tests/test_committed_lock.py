"""The committed dvc.lock records the code and params the repository holds now.

A commit that changes a stage's code or params.yaml without rerunning `dvc repro` leaves a lock
that names the outputs of older code: a fresh clone's `dvc status` then reports every stage as
changed, and the committed metrics no longer say what this code produces."""
from __future__ import annotations

from pathlib import Path

from dvc.repo import Repo

REPO = Path(__file__).resolve().parent.parent


def stale_dependencies(root: Path) -> list[str]:
    """'stage: path (status)' for each dependency a stage's lock entry records differently from
    the working tree. Dependencies that another stage writes, in whole or in part (the raw folder
    holding the synthesized zip), are left out: a clone has none of them until `dvc repro` (or
    `dvc pull`) makes them."""
    with Repo(str(root)) as repo:
        stages = list(repo.index.stages)
        produced = [Path(out.fs_path) for stage in stages for out in stage.outs]
        stale = []
        for stage in stages:
            for dependency in stage.deps:
                path = Path(dependency.fs_path)
                if any(out == path or path in out.parents or out in path.parents for out in produced):
                    continue
                for name, change in dependency.status().items():
                    stale.append(f"{stage.addressing}: {name} ({change})")
    return stale


def test_committed_lock_matches_the_code_and_params():
    stale = stale_dependencies(REPO)
    assert not stale, "dvc.lock is stale; run `dvc repro` and commit dvc.lock:\n" + "\n".join(stale[:20])
