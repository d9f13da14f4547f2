"""Tests for the ConvNeXt backbones: torchvision layout, AIBN variant, stochastic depth and
loading torchvision-format and official-format ImageNet checkpoints."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from iics.augment import eval_transform
from iics.calibration import estimate_aibn_statistics
from iics.models import (
    BACKBONES,
    AIBN2d,
    build_backbone,
    estimate_running_statistics,
    load_imagenet_weights,
    statistics_from_train_images,
)
from iics.models.convnext import CNBlock, DropPath, LayerNorm2d

# torchvision parameter counts minus the 1000-way classifier linear (768 * 1000 + 1000)
PARAM_COUNT = {"convnext_tiny": 28_589_128 - 769_000, "convnext_small": 50_223_688 - 769_000}
DEPTHS = {"convnext_tiny": (3, 3, 9, 3), "convnext_small": (3, 3, 27, 3)}
X = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return build_backbone("convnext_tiny")


def _randomised(model: nn.Module) -> nn.Module:
    """Give norms and layer scales values far from their init, so that every block matters."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_scale"):
                p.uniform_(0.2, 0.5)
            elif name.endswith("bias"):
                p.uniform_(-0.1, 0.1)
            elif p.dim() == 1:  # LayerNorm weights
                p.uniform_(0.5, 1.5)
    return model.eval()


def _torchvision_state(model: nn.Module) -> dict[str, Tensor]:
    """``model``'s weights as torchvision names them, with a 1000-way classifier."""
    state = {re.sub(r"^norm\.", "classifier.0.", k): v.clone() for k, v in model.state_dict().items()}
    state["classifier.2.weight"] = torch.randn(1000, 768)
    state["classifier.2.bias"] = torch.randn(1000)
    return state


def _official_state(model: nn.Module) -> dict[str, Tensor]:
    """``model``'s weights as the facebookresearch ConvNeXt release names them."""
    parts = {"0": "dwconv", "2": "norm", "3": "pwconv1", "5": "pwconv2"}
    state: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        if not key.startswith("features."):  # the final norm keeps its name
            state[key] = value.clone()
            continue
        _, index, rest = key.split(".", 2)
        if int(index) % 2 == 0:  # stem and downsampling layers
            state[f"downsample_layers.{int(index) // 2}.{rest}"] = value.clone()
        else:
            block, name = rest.split(".", 1)
            stage = f"stages.{int(index) // 2}.{block}"
            if name == "layer_scale":
                state[f"{stage}.gamma"] = value.flatten().clone()
            else:
                _, part, leaf = name.split(".")
                state[f"{stage}.{parts[part]}.{leaf}"] = value.clone()
    state["head.weight"] = torch.randn(1000, 768)
    state["head.bias"] = torch.randn(1000)
    return state


@pytest.fixture(scope="module")
def source() -> nn.Module:
    return _randomised(build_backbone("convnext_tiny"))


@pytest.fixture(scope="module")
def torchvision_file(source, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "convnext_tiny.pth"
    torch.save(_torchvision_state(source), path)
    return str(path)


# ---------------------------------------------------------------- layout


@pytest.mark.parametrize("name", ["convnext_tiny", "convnext_small"])
def test_parameter_count_matches_torchvision(name):
    plain = build_backbone(name)
    assert sum(p.numel() for p in plain.parameters()) == PARAM_COUNT[name]
    aibn = build_backbone(name + "_aibn")
    alphas = DEPTHS[name][2] + DEPTHS[name][3]
    assert sum(p.numel() for p in aibn.parameters()) == PARAM_COUNT[name] + alphas


def test_state_dict_key_names(tiny):
    state = tiny.state_dict()
    shapes = {
        "features.0.0.weight": (96, 3, 4, 4),
        "features.0.1.bias": (96,),
        "features.1.0.block.0.weight": (96, 1, 7, 7),
        "features.1.0.block.0.bias": (96,),
        "features.1.2.block.2.weight": (96,),
        "features.2.0.weight": (96,),
        "features.3.1.block.3.weight": (768, 192),
        "features.5.8.block.5.weight": (384, 1536),
        "features.6.1.weight": (768, 384, 2, 2),
        "features.7.2.layer_scale": (768, 1, 1),
        "norm.weight": (768,),
    }
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert "features.3.0.block.1.weight" not in state  # permutes carry nothing
    assert all(k.startswith(("features.", "norm.")) for k in state)
    # torchvision's 182 entries, less classifier.2's two; its classifier.0 is our norm
    assert len(state) == 180
    assert float(state["features.4.0.weight"].sum()) == 192  # LayerNorms start at 1
    assert torch.all(state["features.1.0.layer_scale"] == 1e-6)


def test_output_shapes(tiny):
    model = tiny.eval()
    with torch.no_grad():
        fmap = model.forward_features(X)
        feats = model(X)
    assert fmap.shape == (2, 768, 2, 1)
    assert feats.shape == (2, 768) and model.feature_dim == 768
    torch.testing.assert_close(feats, model.norm(fmap.mean(dim=(2, 3))))


def test_registry():
    names = {"convnext_tiny", "convnext_tiny_aibn", "convnext_small", "convnext_small_aibn"}
    assert names <= set(BACKBONES)
    with pytest.raises(ValueError, match="convnext_small_aibn"):
        build_backbone("convnext_base")


# ---------------------------------------------------------------- stochastic depth


def test_drop_path_rates_grow_linearly():
    for name, top in [("convnext_tiny", 0.1), ("convnext_small", 0.4)]:
        blocks = [m for m in build_backbone(name).modules() if isinstance(m, CNBlock)]
        assert len(blocks) == sum(DEPTHS[name])
        rates = torch.tensor([b.drop_path.p for b in blocks])
        torch.testing.assert_close(rates, torch.linspace(0.0, top, len(blocks)), atol=1e-7, rtol=0)


def test_drop_path_drops_whole_samples_only_in_training():
    torch.manual_seed(2)
    x = torch.randn(400, 3, 2, 2)
    layer = DropPath(0.25)
    assert layer.eval()(x) is x
    out = layer.train()(x)
    dropped = (out == 0).flatten(1).all(dim=1)
    assert 50 < int(dropped.sum()) < 150
    torch.testing.assert_close(out[~dropped], x[~dropped] / 0.75)

    block = CNBlock(8, drop_path=0.5)
    with torch.no_grad():
        block.layer_scale.fill_(1.0)
    x = torch.randn(64, 8, 4, 4)
    with torch.no_grad():
        same = (block.train()(x) == x).flatten(1).all(dim=1)
        assert 0 < int(same.sum()) < 64  # residual branch zeroed for whole samples
        assert not torch.equal(block.eval()(x), x)
        assert torch.equal(block(x), block(x))


# ---------------------------------------------------------------- weights


def test_torchvision_round_trip(source, torchvision_file):
    model = load_imagenet_weights(build_backbone("convnext_tiny"), torchvision_file).eval()
    checkpoint = torch.load(torchvision_file, weights_only=True)
    assert torch.equal(model.norm.weight, checkpoint["classifier.0.weight"])  # final LayerNorm loaded
    loaded = model.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key
    with torch.no_grad():
        assert torch.equal(model(X), source(X))


def test_official_checkpoint_loads(source, tmp_path):
    path = tmp_path / "convnext_tiny_1k_224_ema.pth"
    state = _official_state(source)
    for key in ["downsample_layers.0.1.weight", "stages.2.8.pwconv1.bias", "stages.3.2.gamma", "norm.bias"]:
        assert key in state
    torch.save({"model": state}, path)
    model = load_imagenet_weights(build_backbone("convnext_tiny"), path).eval()
    with torch.no_grad():
        assert torch.equal(model(X), source(X))


def test_aibn_variant(source, torchvision_file):
    model = load_imagenet_weights(build_backbone("convnext_tiny_aibn"), torchvision_file)
    alphas = sorted(n for n, _ in model.named_parameters() if n.endswith("alpha"))
    expected = [f"features.5.{i}.alpha" for i in range(9)] + [f"features.7.{i}.alpha" for i in range(3)]
    assert alphas == sorted(expected)
    assert all(float(model.state_dict()[n]) == pytest.approx(0.1) for n in alphas)
    norm = model.features[5][4].block[2]
    assert isinstance(norm, AIBN2d) and isinstance(model.features[7][0].block[2], AIBN2d)
    assert torch.equal(norm.weight, source.features[5][4].block[2].weight)  # LayerNorm affine
    assert torch.equal(norm.running_mean, torch.zeros(384)) and torch.equal(norm.running_var, torch.ones(384))
    assert isinstance(model.features[3][0].block[2], nn.LayerNorm)
    assert isinstance(model.features[6][0], LayerNorm2d) and isinstance(model.features[0][1], LayerNorm2d)

    model.train()
    out = model(X)
    assert out.shape == (2, 768)
    out.pow(2).sum().backward()
    grads = [p.grad for n, p in model.named_parameters() if n.endswith("alpha")]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    assert float(norm.num_batches_tracked) == 1


def test_resnet_aibn_still_needs_running_statistics(tmp_path):
    state = dict(build_backbone("resnet18").state_dict())
    del state["layer3.0.bn1.running_mean"]
    torch.save(state, tmp_path / "r18.pth")
    with pytest.raises(ValueError, match=r"missing keys \[layer3.0.bn1.running_mean\]"):
        load_imagenet_weights(build_backbone("resnet18_aibn"), tmp_path / "r18.pth")


def test_bad_checkpoints_reported(source, tmp_path):
    state = _torchvision_state(source)
    del state["features.3.1.block.3.weight"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=r"missing.pth: .*1 missing keys \[features.3.1.block.3.weight\]"):
        load_imagenet_weights(build_backbone("convnext_tiny"), tmp_path / "missing.pth")

    state = _official_state(source)
    state["downsample_layers.3.1.weight"] = torch.zeros(768, 384, 1, 1)
    torch.save({"model": state}, tmp_path / "shape.pth")
    message = r"features.6.1.weight \(checkpoint \(768, 384, 1, 1\) vs model \(768, 384, 2, 2\)\)"
    with pytest.raises(ValueError, match=message):
        load_imagenet_weights(build_backbone("convnext_tiny"), tmp_path / "shape.pth")

    torch.save(build_backbone("resnet18").state_dict(), tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"checkpoint does not match the model: 180 missing keys"):
        load_imagenet_weights(build_backbone("convnext_tiny"), tmp_path / "other.pth")


# ---------------------------------------------------------------- AIBN statistics from data


def _aibn_statistics(model: nn.Module) -> list[tuple[Tensor, Tensor]]:
    return [(m.running_mean.clone(), m.running_var.clone()) for m in model.modules() if isinstance(m, AIBN2d)]


def _statistics_of_one_batch(model: nn.Module, batch: Tensor) -> list[tuple[Tensor, Tensor]]:
    """Each AIBN layer's batch statistics for ``batch``: momentum 1 copies them into the running
    buffers; only the AIBN layers run in training mode."""
    model = copy.deepcopy(model).eval()
    for m in model.modules():
        if isinstance(m, AIBN2d):
            m.train()
            m.momentum = 1.0
    with torch.no_grad():
        model(batch)
    return _aibn_statistics(model)


def test_estimated_aibn_statistics_are_the_mean_over_batches(torchvision_file):
    model = load_imagenet_weights(build_backbone("convnext_tiny_aibn"), torchvision_file).train()
    parameters = {n: p.clone() for n, p in model.named_parameters()}
    batches = [X, torch.randn(3, 3, 64, 32, generator=torch.Generator().manual_seed(5))]
    per_batch = [_statistics_of_one_batch(model, b) for b in batches]
    assert estimate_running_statistics(model, batches) == 2
    estimated = _aibn_statistics(model)
    assert len(estimated) == 12  # 9 + 3 blocks of ConvNeXt-T
    for (mean, var), (m1, v1), (m2, v2) in zip(estimated, *per_batch):
        torch.testing.assert_close(mean, (m1 + m2) / 2)
        torch.testing.assert_close(var, (v1 + v2) / 2)
    assert not torch.equal(estimated[0][1], torch.ones(384))  # no longer the placeholder
    # Stochastic depth stayed off (the same estimate again), and nothing else changed.
    again = copy.deepcopy(model)
    estimate_running_statistics(again, batches)
    assert all(torch.equal(a, b) for pair in zip(_aibn_statistics(again), estimated) for a, b in zip(*pair))
    assert all(torch.equal(p, parameters[n]) for n, p in model.named_parameters())
    assert model.training and all(m.momentum == 0.1 for m in model.modules() if isinstance(m, AIBN2d))


def test_estimate_aibn_statistics_reads_the_rows_of_the_cache(torchvision_file):
    images = torch.randint(0, 256, (7, 64, 32, 3), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    rows = np.array([5, 0, 3, 6])
    by_rows = load_imagenet_weights(build_backbone("convnext_tiny_aibn"), torchvision_file)
    copied = copy.deepcopy(by_rows)
    assert estimate_aibn_statistics(by_rows, images.numpy(), torch.device("cpu"), 3, rows=rows, progress=False) == 2
    estimate_running_statistics(copied, [eval_transform(images[rows[:3]]), eval_transform(images[rows[3:]])])
    assert all(torch.equal(a, b) for pair in zip(_aibn_statistics(by_rows), _aibn_statistics(copied)) for a, b in zip(*pair))


def test_which_backbones_take_aibn_statistics_from_the_train_images():
    assert statistics_from_train_images("convnext_tiny_aibn", "data/weights/convnext_tiny-983f1562.pth")
    assert statistics_from_train_images("convnext_small_aibn", "x.pth")
    assert not statistics_from_train_images("convnext_small_aibn", None)  # random init: left as it is
    assert not statistics_from_train_images("resnet50_aibn", "x.pth")  # BatchNorm's ImageNet statistics
    assert not statistics_from_train_images("convnext_tiny", "x.pth")
    with pytest.raises(ValueError, match="no AIBN layers"):
        estimate_running_statistics(build_backbone("resnet18"), [X])
    with pytest.raises(ValueError, match="no batches"):
        estimate_running_statistics(build_backbone("resnet18_aibn"), [])
