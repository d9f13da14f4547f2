"""Feature extraction over the image cache."""
import numpy as np
import pytest
import torch

from iics.features import cosine_distance, extract_features
from iics.models import build_backbone

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_backbone("resnet18").eval()


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 16, 3), dtype=np.uint8)


def test_rows_of_a_memmap_give_the_features_of_the_copied_subset(model, tmp_path):
    np.save(tmp_path / "images.npy", _images(11))
    cache = np.load(tmp_path / "images.npy", mmap_mode="r")
    rows = np.array([9, 2, 2, 7, 0, 10, 5])  # unsorted, one repeated; 7 rows in batches of 3
    indexed = extract_features(model, cache, CPU, batch_size=3, progress=False, rows=rows)
    copied = extract_features(model, cache[rows], CPU, batch_size=3, progress=False)
    assert indexed.shape == (7, model.feature_dim)
    assert torch.equal(indexed, copied)
    with pytest.raises(ValueError, match="no images"):
        extract_features(model, cache, CPU, progress=False, rows=np.array([], dtype=np.int64))


def test_cosine_distance_is_one_minus_cosine_bit_for_bit():
    torch.manual_seed(0)
    a = torch.randn(40, 8)
    b = torch.cat([a[:10] * 3.0, torch.randn(30, 8)])  # some pairs at distance ~0, where rounding matters
    an, bn = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(b, dim=1)
    assert torch.equal(cosine_distance(a, b), (1.0 - an @ bn.T).clamp_(min=0.0))
    assert torch.equal(cosine_distance(a), (1.0 - an @ an.T).clamp_(min=0.0))
    assert (cosine_distance(a).diagonal() < 1e-6).all()
