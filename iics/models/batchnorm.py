"""Batch normalisation that can keep separate statistics for consecutive parts of one batch.

Intra-camera training normalises each camera's images with that camera's own batch statistics.
Forwarding the cameras one after another does that, but runs C small batches through the network
serially. With :func:`split_batch_statistics` the C camera batches go through as one batch of C
equal, consecutive parts, and every batch-statistics layer (:class:`BatchNorm2d` here,
:class:`~iics.models.aibn.AIBN2d`) normalises each part with that part's statistics and updates
its running statistics once per part, in order: the same outputs, gradients and running
statistics as C separate forwards.

Every backbone :func:`iics.models.build_backbone` makes is covered: ResNet and MobileNetV2 build
their BatchNorms from :class:`BatchNorm2d`, the ``_aibn`` ResNets and ConvNeXts use
:class:`~iics.models.aibn.AIBN2d`, and ConvNeXt's LayerNorms take no batch statistics. What
still differs from C separate forwards is randomness drawn inside the network: ConvNeXt's
stochastic depth draws the same masks in distribution but in another order.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .aibn import AIBN2d, momentum_updates


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters, buffers and behaviour) that, in training with
    ``parts`` > 1, normalises each of ``parts`` equal consecutive chunks of the batch with its own
    statistics. Running statistics take one step per chunk, in chunk order, with the unbiased
    variance, as ``nn.BatchNorm2d`` would over the chunks one by one. Statistics are computed in
    at least float32 (as cuDNN's batch norm does for bfloat16 input); the output has the input's
    dtype and keeps its memory format (channels_last under bf16)."""

    parts: int = 1

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.parts == 1:
            return super().forward(x)
        if x.dim() != 4:
            raise ValueError(f"BatchNorm2d expects a 4-D input, got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        if n % self.parts:
            raise ValueError(f"a batch of {n} cannot be split into {self.parts} equal parts")
        # (parts, n / parts, C, H, W): a view, whatever the memory format
        chunks = x.to(torch.promote_types(x.dtype, torch.float32)).unflatten(0, (self.parts, n // self.parts))
        var, mean = torch.var_mean(chunks, dim=(1, 3, 4), correction=0)  # parts x C
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        shift = -mean * scale
        if self.bias is not None:
            shift = shift + self.bias
        out = chunks * scale[:, None, :, None, None] + shift[:, None, :, None, None]
        if self.track_running_stats and self.running_mean is not None:
            count = (n // self.parts) * h * w
            with torch.no_grad():
                unbiased = var.detach() * (count / max(count - 1, 1))
                if self.momentum is None:  # the cumulative average, as nn.BatchNorm2d takes it
                    for part in range(self.parts):
                        self.num_batches_tracked.add_(1)
                        factor = 1.0 / float(self.num_batches_tracked)
                        self.running_mean.lerp_(mean[part].detach().to(self.running_mean.dtype), factor)
                        self.running_var.lerp_(unbiased[part].to(self.running_var.dtype), factor)
                else:
                    self.num_batches_tracked.add_(self.parts)
                    momentum_updates(self.running_mean, mean.detach(), self.momentum)
                    momentum_updates(self.running_var, unbiased, self.momentum)
        return out.flatten(0, 1).to(x.dtype)


@contextmanager
def split_batch_statistics(model: nn.Module, parts: int) -> Iterator[None]:
    """Within the block, every batch-statistics layer of ``model`` treats its input as ``parts``
    equal consecutive batches (see the module docstring)."""
    layers = [m for m in model.modules() if isinstance(m, (BatchNorm2d, AIBN2d))]
    plain = [(name, m) for name, m in model.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, BatchNorm2d)]
    if parts > 1 and plain:
        name, layer = plain[0]
        raise TypeError(f"{type(layer).__name__} {name or '(the model)'} cannot split its batch statistics; "
                        "build the model with iics.models.batchnorm.BatchNorm2d")
    for layer in layers:
        layer.parts = parts
    try:
        yield
    finally:
        for layer in layers:
            layer.parts = 1
