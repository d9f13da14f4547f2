"""Batch normalisation that can keep separate statistics for consecutive parts of one batch.

Intra-camera training normalises each camera's images with that camera's own batch statistics.
Forwarding the cameras one after another does that, but runs C small batches through the network
serially. With :func:`split_batch_statistics` the C camera batches go through as one batch of C
equal, consecutive parts, and every batch-statistics layer (:class:`BatchNorm2d` here,
:class:`~iics.models.aibn.AIBN2d`) normalises each part with that part's statistics and updates
its running statistics once per part, in order: the same outputs, gradients and running
statistics as C separate forwards.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .aibn import AIBN2d


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters, buffers and behaviour) that, in training with
    ``parts`` > 1, normalises each of ``parts`` equal consecutive chunks of the batch with its own
    statistics. Running statistics take one momentum step per chunk, in chunk order, with the
    unbiased variance, as ``nn.BatchNorm2d`` would over the chunks one by one."""

    parts: int = 1

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.parts == 1:
            return super().forward(x)
        n, c, h, w = x.shape
        if n % self.parts:
            raise ValueError(f"a batch of {n} cannot be split into {self.parts} equal parts")
        chunks = x.reshape(self.parts, n // self.parts, c, h, w)
        var, mean = torch.var_mean(chunks, dim=(1, 3, 4), unbiased=False)  # parts x C
        scale = self.weight * torch.rsqrt(var + self.eps)
        shift = self.bias - mean * scale
        out = chunks * scale[:, None, :, None, None] + shift[:, None, :, None, None]
        count = (n // self.parts) * h * w
        with torch.no_grad():
            unbiased = var.detach() * (count / max(count - 1, 1))
            for part in range(self.parts):
                self.running_mean.lerp_(mean[part].detach().to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(unbiased[part].to(self.running_var.dtype), self.momentum)
            self.num_batches_tracked.add_(self.parts)
        return out.reshape(n, c, h, w)


@contextmanager
def split_batch_statistics(model: nn.Module, parts: int) -> Iterator[None]:
    """Within the block, every batch-statistics layer of ``model`` treats its input as ``parts``
    equal consecutive batches (see the module docstring)."""
    layers = [m for m in model.modules() if isinstance(m, (BatchNorm2d, AIBN2d))]
    plain = [m for m in model.modules()
             if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)) and not isinstance(m, BatchNorm2d)]
    if parts > 1 and plain:
        raise TypeError(f"{type(plain[0]).__name__} cannot split its batch statistics; build the model with "
                        "iics.models.batchnorm.BatchNorm2d")
    for layer in layers:
        layer.parts = parts
    try:
        yield
    finally:
        for layer in layers:
            layer.parts = 1
