"""The one array-to-tensor conversion of the numeric modules, and the modules reading arrays they
must not write (read-only, as `np.load(..., mmap_mode="r")` gives, reversed or strided)."""
from __future__ import annotations

import numpy as np
import torch

from iics.affinity import inter_camera_distance, jaccard_similarity
from iics.arrays import as_tensor
from iics.evaluation import evaluate
from iics.rerank import k_reciprocal


def read_only(array: np.ndarray) -> np.ndarray:
    array = array.copy()
    array.flags.writeable = False
    return array


def test_a_writable_c_ordered_array_is_shared_and_a_tensor_detached():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    tensor = as_tensor(array)
    assert np.shares_memory(tensor.numpy(), array)
    weights = torch.ones(3, requires_grad=True)
    assert not as_tensor(weights * 2).requires_grad


def test_read_only_reversed_and_strided_arrays_are_copied_with_their_values():
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    for array in (read_only(base), base[:, ::-1], base[:, ::2], [[1, 2], [3, 4]]):
        tensor = as_tensor(array)
        np.testing.assert_array_equal(tensor.numpy(), np.asarray(array))
        assert tensor.dtype == torch.from_numpy(np.array(array)).dtype
        if isinstance(array, np.ndarray):
            assert not np.shares_memory(tensor.numpy(), array)


def test_the_numeric_modules_read_read_only_arrays_as_writable_ones():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((10, 4)).astype(np.float32)
    probs = rng.random((10, 3)).astype(np.float32)
    cams = np.repeat(np.arange(2), 5)
    dist = 1.0 - np.corrcoef(features).astype(np.float32)

    np.testing.assert_array_equal(k_reciprocal(read_only(dist), k1=4, k2=2), k_reciprocal(dist, k1=4, k2=2))
    np.testing.assert_array_equal(jaccard_similarity(read_only(probs)), jaccard_similarity(probs))
    np.testing.assert_array_equal(inter_camera_distance(read_only(features), read_only(probs), read_only(cams), 0.5),
                                  inter_camera_distance(features, probs, cams, 0.5))
    pids = np.arange(10) % 3
    assert evaluate(read_only(dist[:4, 4:]), pids[:4], pids[4:], cams[:4], cams[4:] + 1) == \
        evaluate(dist[:4, 4:], pids[:4], pids[4:], cams[:4], cams[4:] + 1)
