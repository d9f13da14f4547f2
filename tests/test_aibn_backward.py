"""AIBN2d's hand-written backward against autograd through the plain AIBN formula.

The layer computes its output and gradient in closed form (fewer kernel launches); these tests
hold that path to the formula it replaces: same output, same running statistics, and the same
gradients for the input, weight, bias and mixing weight, in training and in eval mode, for
mixing weights inside, on the edges of and outside [0, 1]; and a bfloat16 channels-last input
against the same input in float32.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from iics.models.aibn import AIBN2d, _AIBNFunction, momentum_updates


def plain_aibn(x, alpha, weight, bias, mean_bn=None, var_bn=None, eps=1e-5):
    """AIBN written as plain tensor operations, for autograd to differentiate."""
    a = alpha.clamp(0.0, 1.0)
    mean_in = x.mean(dim=(2, 3))
    var_in = x.var(dim=(2, 3), unbiased=False)
    if mean_bn is None:
        mean_bn = mean_in.mean(dim=0)
        var_bn = ((var_in + mean_in.pow(2)).mean(dim=0) - mean_bn.pow(2)).clamp_min(0.0)
    mean = (1.0 - a) * mean_in + a * mean_bn
    var = (1.0 - a) * var_in + a * var_bn
    scale = weight * torch.rsqrt(var + eps)
    shift = bias - mean * scale
    return x * scale[:, :, None, None] + shift[:, :, None, None]


def _leaves(seed, dtype=torch.float64, shape=(4, 3, 5, 6), alpha=0.3):
    g = torch.Generator().manual_seed(seed)
    n, c = shape[:2]
    x = (torch.randn(shape, generator=g, dtype=dtype) * 2 + torch.randn(1, c, 1, 1, generator=g, dtype=dtype))
    weight = torch.rand(c, generator=g, dtype=dtype) + 0.5
    bias = torch.rand(c, generator=g, dtype=dtype) - 0.5
    upstream = torch.randn(shape, generator=g, dtype=dtype)
    tensors = [x, torch.full((1,), alpha, dtype=dtype), weight, bias]
    return [t.requires_grad_() for t in tensors], upstream


def _gradients(output, leaves, upstream):
    return torch.autograd.grad(output, leaves, upstream)


@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
@pytest.mark.parametrize("alpha", [-0.4, 0.0, 0.1, 0.7, 1.0, 1.6])
def test_output_and_gradients_match_autograd_of_the_formula(training, alpha):
    leaves, upstream = _leaves(seed=int(alpha * 10) + 5, alpha=alpha)
    stats = (None, None) if training else (torch.randn(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64) + 0.5)
    fused, mean_bn, var_bn = _AIBNFunction.apply(*leaves, *stats, 1e-5, 1)
    plain = plain_aibn(*leaves, *stats)
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    for got, expected in zip(_gradients(fused, leaves, upstream), _gradients(plain, leaves, upstream)):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    x = leaves[0].detach()
    if training:
        torch.testing.assert_close(mean_bn, x.mean(dim=(0, 2, 3))[None])
        torch.testing.assert_close(var_bn, x.var(dim=(0, 2, 3), unbiased=False)[None])
    else:
        assert torch.equal(mean_bn, stats[0][None]) and torch.equal(var_bn, stats[1][None])  # handed back


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_parts_match_the_formula_on_each_part(alpha):
    """With 3 parts each chunk of the batch is normalised with its own batch statistics: the
    output and every gradient equal the plain formula applied chunk by chunk."""
    leaves, upstream = _leaves(seed=7, shape=(6, 3, 4, 5), alpha=alpha)
    fused, mean_bn, var_bn = _AIBNFunction.apply(*leaves, None, None, 1e-5, 3)
    x, rest = leaves[0], leaves[1:]
    plain = torch.cat([plain_aibn(chunk, *rest) for chunk in x.chunk(3)])
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    for got, expected in zip(_gradients(fused, leaves, upstream), _gradients(plain, leaves, upstream)):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    chunks = x.detach().unflatten(0, (3, 2))
    torch.testing.assert_close(mean_bn, chunks.mean(dim=(1, 3, 4)))
    torch.testing.assert_close(var_bn, chunks.var(dim=(1, 3, 4), unbiased=False))


def test_gradient_of_alpha_is_zero_outside_the_clamp_and_not_inside():
    grads = []
    for alpha in (0.5, 1.5):
        leaves, upstream = _leaves(seed=1, alpha=alpha)
        out, _, _ = _AIBNFunction.apply(*leaves, None, None, 1e-5, 1)
        grads.append(_gradients(out, leaves, upstream)[1])
    assert grads[0].abs().item() > 1e-3 and grads[1].item() == 0.0


@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_gradcheck(training):
    leaves, _ = _leaves(seed=3, shape=(3, 2, 3, 4))
    stats = (None, None) if training else (torch.randn(2, dtype=torch.float64), torch.rand(2, dtype=torch.float64) + 0.5)
    assert torch.autograd.gradcheck(lambda *t: _AIBNFunction.apply(*t, *stats, 1e-5, 1)[0], leaves)


def test_layer_updates_running_statistics_and_counts_batches():
    torch.manual_seed(0)
    layer = AIBN2d(3).double().train()
    x = torch.randn(4, 3, 5, 6, dtype=torch.float64) * 3 + 2
    for step in range(1, 3):
        before_mean, before_var = layer.running_mean.clone(), layer.running_var.clone()
        layer(x * step, torch.full((1,), 0.2, dtype=torch.float64))
        batch = x * step
        torch.testing.assert_close(layer.running_mean, 0.9 * before_mean + 0.1 * batch.mean(dim=(0, 2, 3)))
        torch.testing.assert_close(layer.running_var, 0.9 * before_var + 0.1 * batch.var(dim=(0, 2, 3), unbiased=False))
        assert int(layer.num_batches_tracked) == step


@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_bfloat16_channels_last_follows_float32(training):
    """The bf16 path keeps its statistics and gradient sums in float32: only the input, output and
    output gradient are rounded to bfloat16."""
    torch.manual_seed(1)
    x = (torch.randn(6, 8, 16, 8) * 3 + 5).contiguous(memory_format=torch.channels_last)
    upstream = torch.randn_like(x)
    results = []
    for dtype in (torch.float32, torch.bfloat16):
        layer = AIBN2d(8)
        with torch.no_grad():
            layer.weight.copy_(torch.linspace(0.5, 1.5, 8))
            layer.running_mean.fill_(5.0)
            layer.running_var.fill_(9.0)
        layer.train(training)
        alpha = nn.Parameter(torch.full((1,), 0.3))
        inputs = x.detach().to(dtype).requires_grad_()
        out = layer(inputs, alpha)
        out.backward(upstream.to(dtype))
        assert out.dtype == dtype and inputs.grad.dtype == dtype
        assert out.is_contiguous(memory_format=torch.channels_last)
        results.append((out.detach().float(), inputs.grad.float(), alpha.grad, layer.weight.grad, layer.running_var.clone()))
    for reference, rounded in zip(*results):
        torch.testing.assert_close(rounded, reference, rtol=0.03, atol=0.03 * float(reference.abs().max()))


@pytest.mark.parametrize("parts", [1, 6])
def test_momentum_updates_in_one_step_equal_updates_one_by_one(parts):
    g = torch.Generator().manual_seed(4)
    running = torch.randn(5, generator=g, dtype=torch.float64)
    statistics = torch.randn(parts, 5, generator=g, dtype=torch.float64)
    expected = running.clone()
    for row in statistics:
        expected = 0.9 * expected + 0.1 * row
    momentum_updates(running, statistics, 0.1)
    torch.testing.assert_close(running, expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("offset", [0.0, 10.0, 30.0])
def test_float32_is_at_least_as_accurate_as_autograd_of_the_formula(offset):
    """Against float64, the hand-written path in float32 loses no more than autograd through the
    plain formula in float32, also for activations far from zero mean (offset / spread up to 30),
    where sums like sum(g * x) - mean * sum(g) could cancel."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(8, 64, 8, 4, generator=g, dtype=torch.float64) + offset * torch.rand(1, 64, 1, 1, generator=g, dtype=torch.float64)
    upstream = torch.randn(x.shape, generator=g, dtype=torch.float64)
    inputs = (x, torch.tensor([0.3], dtype=torch.float64), torch.rand(64, generator=g, dtype=torch.float64) + 0.5,
              torch.rand(64, generator=g, dtype=torch.float64))

    def results(function, dtype):
        leaves = [t.to(dtype).requires_grad_() for t in inputs]
        out = function(*leaves)
        return [out.detach().double()] + [t.double() for t in _gradients(out, leaves, upstream.to(dtype))]

    def fused(*leaves):
        return _AIBNFunction.apply(*leaves, None, None, 1e-5, 1)[0]

    reference = results(plain_aibn, torch.float64)
    errors = {name: [float((a - b).norm() / b.norm()) for a, b in zip(results(function, torch.float32), reference)]
              for name, function in (("plain", plain_aibn), ("fused", fused))}
    for name, plain_error, fused_error in zip(("output", "input", "alpha", "weight", "bias"), errors["plain"], errors["fused"]):
        assert fused_error <= max(2 * plain_error, 1e-6), (name, fused_error, plain_error)
