"""One forward of C camera batches with per-camera batch statistics equals C separate forwards."""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from iics.models import BACKBONES, AIBN2d, ClassifierHead, build_backbone
from iics.models.batchnorm import BatchNorm2d, split_batch_statistics
from iics.models.convnext import DropPath

PARTS = 3


def _inputs(n=PARTS * 4, c=5, h=6, w=4):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(0)) * 3 + 1


LAYOUTS = {
    "contiguous": lambda x: x,
    "channels_last": lambda x: x.contiguous(memory_format=torch.channels_last),
    "strided": lambda x: torch.cat([x, x], dim=3)[..., ::2],  # neither layout: every other column
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_batchnorm_parts_match_separate_forwards(layout):
    x = LAYOUTS[layout](_inputs().double()).requires_grad_()
    split, plain = BatchNorm2d(5).double(), nn.BatchNorm2d(5).double()
    plain.load_state_dict(split.state_dict())
    with torch.no_grad():
        for bn in (split, plain):
            bn.weight.copy_(torch.linspace(0.5, 1.5, 5))
            bn.bias.copy_(torch.linspace(-1, 1, 5))
    with split_batch_statistics(split, PARTS):
        out = split(x)
    reference = torch.cat([plain(part) for part in x.chunk(PARTS)])
    torch.testing.assert_close(out, reference, rtol=1e-12, atol=1e-12)
    assert out.is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")
    weights = torch.randn_like(out)
    grad_split = torch.autograd.grad((out * weights).sum(), [x, split.weight, split.bias])
    grad_plain = torch.autograd.grad((reference * weights).sum(), [x, plain.weight, plain.bias])
    for a, b in zip(grad_split, grad_plain):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(split.running_mean, plain.running_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(split.running_var, plain.running_var, rtol=1e-12, atol=1e-12)
    assert int(split.num_batches_tracked) == int(plain.num_batches_tracked) == PARTS
    assert split.parts == 1  # restored after the block


def test_aibn_parts_match_separate_forwards():
    x = _inputs().requires_grad_()
    split, serial = AIBN2d(5), AIBN2d(5)
    alpha = torch.tensor([0.4])
    with split_batch_statistics(split, PARTS):
        out = split(x, alpha)
    reference = torch.cat([serial(part, alpha) for part in x.chunk(PARTS)])
    assert torch.allclose(out, reference, atol=1e-5)
    g1 = torch.autograd.grad(out.square().sum(), x)[0]
    g2 = torch.autograd.grad(reference.square().sum(), x)[0]
    assert torch.allclose(g1, g2, atol=1e-4)
    assert torch.allclose(split.running_mean, serial.running_mean, atol=1e-6)
    assert torch.allclose(split.running_var, serial.running_var, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet18_aibn", "mobilenet_v2", "convnext_tiny_aibn"])
def test_backbone_one_forward_matches_per_camera_forwards(name):
    # float64: the two orders agree to rounding (float32 differs in the 4th digit after 20 layers
    # of small-batch normalisation, which is rounding, not a different computation)
    torch.manual_seed(0)
    split = build_backbone(name).train().double()
    for module in split.modules():
        if isinstance(module, DropPath):  # random masks, drawn in another order by one forward
            module.p = 0.0
    serial = copy.deepcopy(split)
    x = torch.randn(PARTS * 4, 3, 64, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with split_batch_statistics(split, PARTS):
        features = split(x)
    reference = torch.cat([serial(part) for part in x.chunk(PARTS)])
    assert torch.allclose(features, reference, atol=1e-9)
    features.square().sum().backward()
    reference.square().sum().backward()
    for (key, p), q in zip(split.named_parameters(), serial.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-8), key
    buffers = dict(serial.named_buffers())
    assert any(key.endswith("running_var") for key in buffers)
    for key, a in split.named_buffers():
        assert torch.allclose(a.double(), buffers[key].double(), atol=1e-9), key


@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_splits_all_its_batch_statistics(name):
    """No backbone iics.models builds has a batch-statistics layer the split would miss (that
    would be a TypeError, or statistics pooled over all cameras)."""
    model = build_backbone(name)
    with_statistics = [m for m in model.modules() if hasattr(m, "running_mean")]
    assert all(isinstance(m, (BatchNorm2d, AIBN2d)) for m in with_statistics)
    assert (name.endswith("_aibn") or not name.startswith("convnext")) == bool(with_statistics)
    with split_batch_statistics(model, PARTS):
        assert all(m.parts == PARTS for m in with_statistics)
    assert all(m.parts == 1 for m in with_statistics)


def test_bf16_parts_keep_dtype_layout_and_float32_statistics():
    """Under bf16 autocast in channels_last (the training's bf16 path), each part is normalised
    as nn.BatchNorm2d normalises it alone, the output stays bfloat16 and channels_last."""
    x = (_inputs(c=8, h=8, w=6) * 4 + 100).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    split, plain = BatchNorm2d(8), nn.BatchNorm2d(8)
    with split_batch_statistics(split, PARTS):
        out = split(x)
    assert out.dtype == torch.bfloat16 and out.is_contiguous(memory_format=torch.channels_last)
    reference = torch.cat([plain(part.float()) for part in x.chunk(PARTS)])  # exact parts, float32
    torch.testing.assert_close(out.float(), reference, atol=2e-2, rtol=0)  # bfloat16 rounding of the output
    torch.testing.assert_close(split.running_mean, plain.running_mean, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(split.running_var, plain.running_var, atol=1e-4, rtol=1e-4)


def test_cumulative_momentum_and_no_affine_match_separate_forwards():
    x = _inputs()
    split = BatchNorm2d(5, momentum=None, affine=False)
    plain = nn.BatchNorm2d(5, momentum=None, affine=False)
    with split_batch_statistics(split, PARTS):
        out = split(x)
    reference = torch.cat([plain(part) for part in x.chunk(PARTS)])
    torch.testing.assert_close(out, reference)
    torch.testing.assert_close(split.running_mean, plain.running_mean)
    torch.testing.assert_close(split.running_var, plain.running_var)


def test_without_running_statistics_parts_match_separate_forwards():
    x = _inputs().double()
    split = BatchNorm2d(5, track_running_stats=False).double()
    plain = nn.BatchNorm2d(5, track_running_stats=False).double()
    with split_batch_statistics(split, PARTS):
        out = split(x)
    torch.testing.assert_close(out, torch.cat([plain(part) for part in x.chunk(PARTS)]), rtol=1e-12, atol=1e-12)
    assert split.running_mean is None


def test_split_needs_equal_parts_and_splittable_layers():
    layer = BatchNorm2d(5)
    with split_batch_statistics(layer, PARTS), pytest.raises(ValueError, match="equal parts"):
        layer(torch.randn(PARTS * 4 + 1, 5, 2, 2))
    with pytest.raises(TypeError, match="cannot split"):
        with split_batch_statistics(nn.Sequential(nn.BatchNorm2d(5)), PARTS):
            pass
    with split_batch_statistics(layer, PARTS):  # eval mode: running statistics, no split
        layer.eval()
        assert torch.equal(layer(torch.ones(2, 5, 1, 1)), nn.functional.batch_norm(
            torch.ones(2, 5, 1, 1), layer.running_mean, layer.running_var, layer.weight, layer.bias))


def test_numerics_benchmark_compares_the_two_paths_of_one_step():
    """benchmarks/one_forward_numerics.py: its two paths give one float64 gradient, and its
    comparison reports a perturbed gradient's error."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import one_forward_numerics as bench

    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten())
    heads = [ClassifierHead(4, 2) for _ in range(PARTS)]
    x = torch.randn(PARTS * 4, 3, 8, 4, generator=torch.Generator().manual_seed(2)) * 2
    targets = [torch.tensor([0, 1, 0, 1])] * PARTS
    cpu = torch.device("cpu")
    per_camera, together = (bench.gradient(backbone, heads, x, targets, torch.float64, False, one, cpu)
                            for one in (False, True))
    same = bench.compare(together, per_camera)
    assert same["rel_error"] < 1e-12 and same["cosine"] > 1 - 1e-12 and same["median_tensor_rel_error"] < 1e-12
    scaled = bench.compare([g * 1.01 for g in per_camera], per_camera)
    assert scaled["rel_error"] == pytest.approx(0.01) and scaled["median_tensor_rel_error"] == pytest.approx(0.01)
    float32 = bench.compare(bench.gradient(backbone, heads, x, targets, torch.float32, False, True, cpu), per_camera)
    assert 0 < float32["rel_error"] < 1e-4
