"""Feature extraction over the image cache, the cosine distance and the camera heads' outputs."""
import numpy as np
import pytest
import torch

from iics.augment import eval_transform
from iics.features import NonFiniteFeatures, camera_head_probabilities, cosine_distance, extract_features
from iics.models import ClassifierHead, build_backbone

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
    for size in (0, -3, 2.5):  # 0 would loop forever or fail in range(); a negative one gives no batch
        with pytest.raises(ValueError, match=rf"^batch_size must be an integer >= 1, got {size}$"):
            extract_features(model, cache, CPU, batch_size=size, progress=False)


def test_cosine_distance_is_one_minus_cosine_bit_for_bit():
    torch.manual_seed(0)
    a = torch.randn(40, 8)
    b = torch.cat([a[:10] * 3.0, torch.randn(30, 8)])  # some pairs at distance ~0, where rounding matters
    an, bn = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(b, dim=1)
    assert torch.equal(cosine_distance(a, b), (1.0 - an @ bn.T).clamp_(min=0.0))
    assert torch.equal(cosine_distance(a), (1.0 - an @ an.T).clamp_(min=0.0))
    assert (cosine_distance(a).diagonal() < 1e-6).all()


def test_features_average_the_image_and_its_mirror(model):
    images = _images(5, seed=1)
    mirrored = np.ascontiguousarray(images[:, :, ::-1])
    features = extract_features(model, images, CPU, batch_size=5, progress=False)
    assert torch.allclose(features, extract_features(model, mirrored, CPU, batch_size=5, progress=False),
                          rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        x = eval_transform(torch.from_numpy(images))
        plain, flipped = model(x), model(x.flip(-1))
    torch.testing.assert_close(features, (plain + flipped) / 2)
    # The mirror image changes this model's features, so the check above has something to see.
    assert not torch.allclose(plain, flipped, rtol=1e-3, atol=1e-3)


def test_camera_head_probabilities_concatenate_eval_mode_softmax_in_head_order():
    torch.manual_seed(0)
    heads = [ClassifierHead(6, 3), ClassifierHead(6, 5)]
    for head in heads:  # running statistics far from the batch's own, then left in training mode
        head.train()
        head(4.0 + 3.0 * torch.randn(32, 6))
        torch.nn.init.normal_(head.classifier.weight, std=1.0)
    running = [head.bn.running_mean.clone() for head in heads]
    features = torch.randn(7, 6)
    probs = camera_head_probabilities(features, heads, CPU)
    assert probs.shape == (7, 8) and probs.dtype == torch.float32
    blocks = probs[:, :3], probs[:, 3:]
    for block, head, before in zip(blocks, heads, running):
        torch.testing.assert_close(block.sum(dim=1), torch.ones(7))
        with torch.no_grad():
            expected = torch.softmax(head.eval()(features), dim=1)
        torch.testing.assert_close(block, expected)
        assert torch.equal(head.bn.running_mean, before)  # eval mode: the statistics were not updated
    with torch.no_grad():
        batch_statistics = torch.softmax(heads[0].train()(features), dim=1)
    assert not torch.allclose(blocks[0], batch_statistics, atol=1e-3)


def test_an_image_with_nan_or_infinite_features_is_an_error_naming_how_many():
    class BrokenOnBrightImages(torch.nn.Module):  # NaN where the mean pixel is high, inf where it is low
        def forward(self, x):
            mean = x.mean(dim=(1, 2, 3), keepdim=True).flatten(1)
            broken = torch.where(mean > 0.5, torch.nan, torch.where(mean < -0.5, torch.inf, 0.0))
            return torch.cat([mean, mean + broken], dim=1)

    images = np.full((7, 8, 4, 3), 128, dtype=np.uint8)
    assert torch.isfinite(extract_features(BrokenOnBrightImages(), images, CPU, batch_size=3, progress=False)).all()
    images[2], images[6], images[4] = 255, 255, 0
    with pytest.raises(NonFiniteFeatures, match=r"^3 of 7 images give NaN or infinite features"):
        extract_features(BrokenOnBrightImages(), images, CPU, batch_size=3, progress=False)
