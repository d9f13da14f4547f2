"""Adaptive instance-batch normalisation (AIBN) for 4-D feature maps."""

from __future__ import annotations

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
