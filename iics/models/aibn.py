"""Adaptive instance-batch normalisation (AIBN) for 4-D feature maps."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


class AIBN2d(nn.Module):
    """Mixes per-sample (instance) and batch statistics with a weight ``a``.

    Per channel, with ``a = clamp(alpha, 0, 1)``::

        mean = (1 - a) * mean_instance + a * mean_batch
        var  = (1 - a) * var_instance  + a * var_batch

    Instance statistics are taken per sample over H*W (biased variance).
    In training the batch statistics are the batch average of the instance
    statistics (``var_batch = E[var_in + mean_in**2] - mean_batch**2``, i.e.
    the biased variance over N*H*W) and update the running statistics with
    momentum 0.1; the running variance stores this *biased* batch variance
    (no N/(N-1) correction, unlike ``nn.BatchNorm2d``). In eval mode the
    running statistics replace the batch statistics.

    The mixing weight is not owned by this layer: the caller passes ``alpha``
    to :meth:`forward` (the residual block owns one shared ``alpha``).
    Parameter and buffer names match ``nn.BatchNorm2d`` so BatchNorm
    checkpoints load directly.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: Tensor, alpha: Tensor | float) -> Tensor:
        """Normalise ``x`` (N x C x H x W) using mixing weight ``alpha``."""
        if x.dim() != 4:
            raise ValueError(f"AIBN2d expects a 4-D input, got shape {tuple(x.shape)}")
        # At least float32 throughout, as cuDNN's batch norm does for bfloat16 input: in bfloat16
        # the batch variance E[var + mean^2] - mean^2 cancels away, and so does x * scale + shift.
        dtype = torch.promote_types(x.dtype, torch.float32)
        alpha = torch.as_tensor(alpha, dtype=dtype, device=x.device)
        if self.training:
            out, mean_bn, var_bn = _AIBNFunction.apply(x, alpha, self.weight, self.bias, None, None, self.eps)
            with torch.no_grad():
                self.running_mean.lerp_(mean_bn.to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(var_bn.to(self.running_var.dtype), self.momentum)
                self.num_batches_tracked.add_(1)
        else:
            out, _, _ = _AIBNFunction.apply(x, alpha, self.weight, self.bias, self.running_mean.to(dtype),
                                            self.running_var.to(dtype), self.eps)
        return out

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class _AIBNFunction(torch.autograd.Function):
    """AIBN's normalisation with a hand-written backward.

    Autograd through the plain formula runs 30 small operations per layer forward and 62
    backward (float32 training), each one kernel launch on a GPU, where a training step is bound
    by launching kernels, not by the arithmetic. This computes the same function in 17 and 38:
    the statistics in one pass (``var_mean``), the mixtures with ``lerp`` and the output with
    one ``addcmul``; and the gradient from two per-channel sums of the output gradient (of ``g``
    and of ``g * x``) and closed-form per-channel terms. tests/test_aibn_backward.py holds it
    to autograd through the plain formula.

    ``forward(x, alpha, weight, bias, mean_bn, var_bn, eps)`` returns the output and the batch
    mean and variance it used (not differentiable). Given ``mean_bn`` and ``var_bn`` (eval
    mode: the running statistics) it uses them as constants; given ``None`` (training) it
    computes them from the batch, and the gradient flows through them too.
    """

    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor, weight: Tensor, bias: Tensor, mean_bn: Tensor | None,
                var_bn: Tensor | None, eps: float) -> tuple[Tensor, Tensor, Tensor]:
        xs = x.to(alpha.dtype)
        var_in, mean_in = torch.var_mean(xs, dim=(2, 3), correction=0)  # N x C
        batch = mean_bn is None
        if batch:
            mean_bn = mean_in.mean(dim=0)
            var_bn = torch.addcmul(torch.addcmul(var_in, mean_in, mean_in).mean(dim=0),
                                   mean_bn, mean_bn, value=-1).clamp_min_(0.0)
        a = alpha.clamp(0.0, 1.0)
        mean = torch.lerp(mean_in, mean_bn, a)  # N x C
        inv_std = torch.lerp(var_in, var_bn, a).add_(eps).rsqrt_()
        scale = inv_std * weight
        shift = torch.addcmul(bias, mean, scale, value=-1)
        out = torch.addcmul(shift[:, :, None, None], xs, scale[:, :, None, None], out=torch.empty_like(x))
        ctx.batch = batch
        ctx.save_for_backward(xs, alpha, a, mean_in, var_in, mean_bn, var_bn, mean, inv_std, scale)
        ctx.mark_non_differentiable(mean_bn, var_bn)
        ctx.set_materialize_grads(False)  # no zero tensors for the statistics' (absent) gradients
        return out, mean_bn, var_bn

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor, _grad_mean_bn: Tensor | None,
                 _grad_var_bn: Tensor | None) -> tuple[Tensor | None, ...]:
        if grad_out is None:  # the output took no part in the loss
            return (None,) * 7
        xs, alpha, a, mean_in, var_in, mean_bn, var_bn, mean, inv_std, scale = ctx.saved_tensors
        n, _, h, w = xs.shape
        g_sum = grad_out.sum(dim=(2, 3), dtype=xs.dtype)  # N x C
        g_dot_x = (grad_out * xs).sum(dim=(2, 3))
        g_scale = torch.addcmul(g_dot_x, mean, g_sum, value=-1)  # dL/dscale = sum g * (x - mean)
        g_scale_inv_std = g_scale * inv_std
        g_mean = -scale * g_sum  # dL/dmean, as the output is x * scale + bias - mean * scale
        g_var = g_scale_inv_std * scale * inv_std * -0.5  # dscale/dvar = -weight / 2 * inv_std^3
        one_minus_a = 1.0 - a
        g_mean_in = g_mean * one_minus_a
        g_var_in = g_var * one_minus_a
        if ctx.batch:  # mean_bn = mean_n(mean_in), var_bn = mean_n(var_in + mean_in^2) - mean_bn^2
            g_var_bn = g_var.sum(dim=0) * a
            g_mean_bn = torch.addcmul(g_mean.sum(dim=0) * a, mean_bn, g_var_bn, value=-2.0)
            g_mean_in += torch.addcmul(g_mean_bn, mean_in, g_var_bn, value=2.0) / n
            g_var_in += g_var_bn / n
        # x enters through (x - mean_in) / hw and (x - mean_in)^2 / hw besides the output
        slope = g_var_in * (2.0 / (h * w))
        offset = torch.addcmul(g_mean_in / (h * w), slope, mean_in, value=-1)
        grad_x = torch.addcmul(offset[:, :, None, None], slope[:, :, None, None], xs)
        grad_x = grad_x.addcmul_(grad_out, scale[:, :, None, None]).to(grad_out.dtype)
        grad_alpha = grad_weight = grad_bias = None
        if ctx.needs_input_grad[1]:
            pull = (g_mean * (mean_bn - mean_in) + g_var * (var_bn - var_in)).sum()
            grad_alpha = (pull * (alpha == a)).reshape(alpha.shape)  # zero where the clamp holds alpha
        if ctx.needs_input_grad[2]:
            grad_weight = g_scale_inv_std.sum(dim=0)
        if ctx.needs_input_grad[3]:
            grad_bias = g_sum.sum(dim=0)
        return grad_x, grad_alpha, grad_weight, grad_bias, None, None, None


@torch.no_grad()
def estimate_running_statistics(model: nn.Module, batches: Iterable[Tensor]) -> int:
    """Set every :class:`AIBN2d` of ``model``'s running mean and variance to the average of its
    batch statistics over ``batches`` (inputs the model takes, on its device), and return how
    many batches there were.

    For AIBN layers no checkpoint holds statistics for (in ConvNeXt they replace LayerNorms,
    which have none): left at 0 and 1, eval mode would mix those placeholders into every
    feature. Only the AIBN layers run in training mode meanwhile, so the rest of the model
    (stochastic depth, any BatchNorm) behaves as in eval mode and nothing else changes; each
    batch is normalised with its own statistics, so the average does not depend on their order.
    """
    layers = [m for m in model.modules() if isinstance(m, AIBN2d)]
    if not layers:
        raise ValueError("estimate_running_statistics: the model has no AIBN layers")
    was_training, momenta = model.training, [m.momentum for m in layers]
    model.eval()
    for layer in layers:
        layer.train()
        layer.running_mean.zero_()
        layer.running_var.zero_()
    count = 0
    try:
        for batch in batches:
            count += 1
            for layer in layers:
                layer.momentum = 1.0 / count  # running = the mean of the batch statistics so far
            model(batch)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.train(was_training)
    if count == 0:
        raise ValueError("estimate_running_statistics: no batches")
    return count
