"""Adaptive instance-batch normalisation (AIBN) for 4-D feature maps."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


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
        xs = x.to(torch.promote_types(x.dtype, torch.float32))
        a = torch.as_tensor(alpha, dtype=xs.dtype, device=x.device).clamp(0.0, 1.0)
        mean_in = xs.mean(dim=(2, 3))  # N x C
        var_in = xs.var(dim=(2, 3), unbiased=False)  # N x C
        if self.training:
            mean_bn = mean_in.mean(dim=0)
            var_bn = ((var_in + mean_in.pow(2)).mean(dim=0) - mean_bn.pow(2)).clamp_min(0.0)
            with torch.no_grad():
                m = self.momentum
                self.running_mean.mul_(1.0 - m).add_(mean_bn.detach().to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1.0 - m).add_(var_bn.detach().to(self.running_var.dtype), alpha=m)
                self.num_batches_tracked.add_(1)
        else:
            mean_bn = self.running_mean.to(xs.dtype)
            var_bn = self.running_var.to(xs.dtype)
        mean = (1.0 - a) * mean_in + a * mean_bn  # N x C
        var = (1.0 - a) * var_in + a * var_bn
        scale = self.weight * torch.rsqrt(var + self.eps)  # N x C
        shift = self.bias - mean * scale
        return (xs * scale[:, :, None, None] + shift[:, :, None, None]).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


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
