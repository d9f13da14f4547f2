"""Adaptive instance-batch normalisation (AIBN) for 4-D feature maps."""

from __future__ import annotations

import functools
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
    In training the batch statistics come from the instance statistics
    (``var_batch = E[var_in + (mean_in - mean_batch)**2]``, i.e. the biased
    variance over N*H*W) and update the running statistics with
    momentum 0.1; the running variance stores this *biased* batch variance
    (no N/(N-1) correction, unlike ``nn.BatchNorm2d``). In eval mode the
    running statistics replace the batch statistics.

    With ``parts`` > 1 (set by :func:`iics.models.batchnorm.split_batch_statistics`) a training
    batch is ``parts`` equal consecutive batches: each gets its own batch statistics and one
    running-statistics update, in order, as if forwarded one by one.

    The mixing weight is not owned by this layer: the caller passes ``alpha``
    to :meth:`forward` (the residual block owns one shared ``alpha``).
    Parameter and buffer names match ``nn.BatchNorm2d`` so BatchNorm
    checkpoints load directly.
    """

    parts: int = 1

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
        # At least float32 throughout, as cuDNN's batch norm does for bfloat16 input: bfloat16's
        # 8 significant bits would round away the statistics and x * scale + shift.
        dtype = torch.promote_types(x.dtype, torch.float32)
        alpha = torch.as_tensor(alpha, dtype=dtype, device=x.device)
        if self.training:
            if len(x) % self.parts:
                raise ValueError(f"a batch of {len(x)} cannot be split into {self.parts} equal parts")
            out, mean_bn, var_bn = _AIBNFunction.apply(x, alpha, self.weight, self.bias, None, None, self.eps,
                                                       self.parts)
            with torch.no_grad():
                momentum_updates(self.running_mean, mean_bn, self.momentum)
                momentum_updates(self.running_var, var_bn, self.momentum)
                self.num_batches_tracked.add_(self.parts)
        else:
            out, _, _ = _AIBNFunction.apply(x, alpha, self.weight, self.bias, self.running_mean.to(dtype),
                                            self.running_var.to(dtype), self.eps, 1)
        return out

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


def momentum_updates(running: Tensor, statistics: Tensor, momentum: float) -> None:
    """Apply to ``running`` (C) one momentum update per row of ``statistics`` (P x C), in row
    order, as one operation: the result of P updates ``running = (1 - m) running + m s_p`` is
    ``(1 - m)^P running + sum_p m (1 - m)^(P - 1 - p) s_p``."""
    parts = len(statistics)
    weights = _momentum_weights(parts, momentum, running.device, running.dtype)
    running.addmv_(statistics.T.to(running.dtype), weights, beta=(1.0 - momentum) ** parts)


@functools.cache
def _momentum_weights(parts: int, momentum: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    """m (1 - m)^(P - 1 - p) for p = 0 .. P - 1, made once per device (no host copy per step) and
    kept: a step replayed from a CUDA graph reads it at the address it had when captured, so an
    evicted entry would be freed under it. A run meets a handful of keys."""
    return torch.tensor([momentum * (1.0 - momentum) ** (parts - 1 - p) for p in range(parts)], dtype=dtype,
                        device=device)


class _AIBNFunction(torch.autograd.Function):
    """AIBN's normalisation with a hand-written backward.

    Autograd through the plain formula runs 30 small operations per layer forward and 62
    backward (float32 training), each one kernel launch on a GPU, where a training step is bound
    by launching kernels, not by the arithmetic. This computes the same function in 16 and 28:
    the statistics in one pass (``var_mean``), the mixtures with ``lerp`` and the output with
    one ``addcmul``; and the gradient from two per-channel sums of the output gradient (of ``g``
    and of ``g * x``) and closed-form per-channel terms, the batch statistics' share of them as
    one ``lerp`` each towards the part's mean. tests/test_aibn_backward.py holds it
    to autograd through the plain formula.

    ``forward(x, alpha, weight, bias, mean_bn, var_bn, eps, parts)`` returns the output and the
    batch means and variances it used, ``parts`` x C (not differentiable). Given ``mean_bn``
    and ``var_bn`` (eval mode: the running statistics, ``parts`` 1) it uses them as constants;
    given ``None`` (training) it computes them for each of ``parts`` equal consecutive chunks of
    the batch, and the gradient flows through them too. The per-channel terms are held as
    ``parts`` x (N / parts) x C views, so each chunk's rows meet their own statistics.
    """

    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor, weight: Tensor, bias: Tensor, mean_bn: Tensor | None,
                var_bn: Tensor | None, eps: float, parts: int) -> tuple[Tensor, Tensor, Tensor]:
        xs = x.to(alpha.dtype)
        var_in, mean_in = torch.var_mean(xs, dim=(2, 3), correction=0)  # N x C
        n, c = mean_in.shape
        mean_parts, var_parts = mean_in.view(parts, n // parts, c), var_in.view(parts, n // parts, c)
        batch = mean_bn is None
        if batch:
            mean_bn = mean_parts.mean(dim=1)  # parts x C
            # the variance over the part's pixels as the mean within-sample variance plus the
            # variance of the sample means: no E[x^2] - E[x]^2 to cancel
            spread = mean_parts - mean_bn[:, None]  # parts x rows x C
            var_bn = torch.addcmul(var_parts, spread, spread).mean(dim=1)
        else:
            mean_bn, var_bn = mean_bn.view(1, c), var_bn.view(1, c)
            spread = None  # made by the backward, if one runs
        a = alpha.clamp(0.0, 1.0)
        mean = torch.lerp(mean_parts, mean_bn[:, None], a).view(n, c)
        inv_std = torch.lerp(var_parts, var_bn[:, None], a).view(n, c).add_(eps).rsqrt_()
        scale = inv_std * weight
        shift = torch.addcmul(bias, mean, scale, value=-1)
        out = torch.addcmul(shift[:, :, None, None], xs, scale[:, :, None, None], out=torch.empty_like(x))
        ctx.batch = batch
        ctx.save_for_backward(xs, alpha, a, mean_in, var_in, mean_bn, var_bn, mean, inv_std, scale, spread)
        ctx.mark_non_differentiable(mean_bn, var_bn)
        ctx.set_materialize_grads(False)  # no zero tensors for the statistics' (absent) gradients
        return out, mean_bn, var_bn

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor | None, _grad_mean_bn: Tensor | None,
                 _grad_var_bn: Tensor | None) -> tuple[Tensor | None, ...]:
        if grad_out is None:  # the output took no part in the loss
            return (None,) * 8
        xs, alpha, a, mean_in, var_in, mean_bn, var_bn, mean, inv_std, scale, spread = ctx.saved_tensors
        n, c, h, w = xs.shape
        parts = len(mean_bn)
        rows = n // parts  # of each part
        # Per row and channel, with s = scale, r = inv_std and sums over the row's H x W pixels:
        # dL/dmean = -s sum(g) and dL/dvar = -r^2 s sum(g (x - mean)) / 2. Taken per pixel
        # (/ hw) and with the sign and the 2 of d var_in / dx folded in, they are `mean_pull` and
        # `var_pull` below; x gets them through mean_in and var_in: a share (1 - a) directly and
        # a share a through its part's batch statistics, whose mean over the part's rows is the
        # same for every row (lerp with the part's mean).
        g_sum = grad_out.sum(dim=(2, 3), dtype=xs.dtype)  # N x C
        g_dot_x = (grad_out * xs).sum(dim=(2, 3))
        g_scale = torch.addcmul(g_dot_x, mean, g_sum, value=-1)  # dL/dscale = sum g * (x - mean)
        g_weight_rows = g_scale * inv_std
        scale_per_pixel = scale / (h * w)
        mean_pull = (scale_per_pixel * g_sum).view(parts, rows, c)  # -dL/dmean / hw
        var_pull = (g_weight_rows * (scale_per_pixel * inv_std)).view(parts, rows, c)  # -2 dL/dvar / hw
        if ctx.batch:  # per part: mean_bn = mean(mean_in), var_bn = mean(var_in + spread^2)
            var_pull_of_part = var_pull.mean(dim=1, keepdim=True)
            slope = torch.lerp(var_pull, var_pull_of_part, a)
            shift = torch.lerp(mean_pull, mean_pull.mean(dim=1, keepdim=True), a)
            shift = shift.addcmul_(spread, var_pull_of_part * a)  # var_bn's dependence on mean_in
        else:  # the running statistics are constants
            spread = mean_in.view(parts, rows, c) - mean_bn[:, None]
            one_minus_a = 1.0 - a
            slope, shift = var_pull * one_minus_a, mean_pull * one_minus_a
        # dL/dx = g s + (dL/dmean_in + 2 dL/dvar_in (x - mean_in)) / hw = g s - slope x + offset
        offset = torch.addcmul(shift, slope, mean_in.view(parts, rows, c), value=-1).neg_().view(n, c)
        grad_x = torch.addcmul(offset[:, :, None, None], slope.view(n, c)[:, :, None, None], xs, value=-1)
        grad_x = grad_x.addcmul_(grad_out, scale[:, :, None, None]).to(grad_out.dtype)
        grad_alpha = grad_weight = grad_bias = None
        if ctx.needs_input_grad[1]:  # dL/da = sum dL/dmean (mean_bn - mean_in) + dL/dvar (var_bn - var_in)
            var_apart = var_in.view(parts, rows, c) - var_bn.view(-1, 1, c)
            pull = torch.dot(mean_pull.flatten(), spread.flatten())
            pull = pull.add_(torch.dot(var_pull.flatten(), var_apart.flatten()), alpha=0.5).mul_(h * w)
            grad_alpha = (pull * (alpha == a)).reshape(alpha.shape)  # zero where the clamp holds alpha
        if ctx.needs_input_grad[2]:
            grad_weight = g_weight_rows.sum(dim=0)
        if ctx.needs_input_grad[3]:
            grad_bias = g_sum.sum(dim=0)
        return grad_x, grad_alpha, grad_weight, grad_bias, None, None, None, None


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
