"""One forward of C camera batches with per-camera batch statistics equals C separate forwards."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from iics.models import AIBN2d, build_backbone
from iics.models.batchnorm import BatchNorm2d, split_batch_statistics

PARTS = 3


def _inputs(n=PARTS * 4, c=5, h=6, w=4):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(0)) * 3 + 1


def test_batchnorm_parts_match_separate_forwards():
    x = _inputs().requires_grad_()
    split, plain = BatchNorm2d(5), nn.BatchNorm2d(5)
    plain.load_state_dict(split.state_dict())
    with torch.no_grad():
        for bn in (split, plain):
            bn.weight.copy_(torch.linspace(0.5, 1.5, 5))
            bn.bias.copy_(torch.linspace(-1, 1, 5))
    with split_batch_statistics(split, PARTS):
        out = split(x)
    reference = torch.cat([plain(part) for part in x.chunk(PARTS)])
    assert torch.allclose(out, reference, atol=1e-5)
    weights = torch.randn_like(out)
    grad_split = torch.autograd.grad((out * weights).sum(), [x, split.weight, split.bias])
    grad_plain = torch.autograd.grad((reference * weights).sum(), [x, plain.weight, plain.bias])
    for a, b in zip(grad_split, grad_plain):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(split.running_mean, plain.running_mean, atol=1e-6)
    assert torch.allclose(split.running_var, plain.running_var, atol=1e-5)
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


@pytest.mark.parametrize("name", ["resnet18_aibn", "mobilenet_v2"])
def test_backbone_one_forward_matches_per_camera_forwards(name):
    # float64: the two orders agree to rounding (float32 differs in the 4th digit after 20 layers
    # of small-batch normalisation, which is rounding, not a different computation)
    torch.manual_seed(0)
    split = build_backbone(name).train().double()
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
    for (key, a), b in zip(split.named_buffers(), serial.buffers()):
        assert torch.allclose(a.double(), b.double(), atol=1e-9), key


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
