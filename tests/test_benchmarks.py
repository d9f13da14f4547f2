"""The benchmark's synthetic data plan matches the dataset sizes it claims to stand for."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import round_speed  # noqa: E402


@pytest.mark.parametrize("name", ["market1501", "msmt17"])
def test_plan_has_the_dataset_counts(name):
    scale = round_speed.SCALES[name]
    pids, cams = round_speed.plan(scale, seed=0)
    assert len(pids) == scale.images
    assert len(np.unique(pids)) == scale.identities and set(np.unique(cams)) == set(range(1, scale.cameras + 1))
    cameras_per_id = {pid: len(np.unique(cams[pids == pid])) for pid in np.unique(pids)[:50]}
    assert set(cameras_per_id.values()) == {scale.cameras_per_id}
    assert np.array_equal(pids, round_speed.plan(scale, seed=0)[0])
