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
from torch.nn import functional as F

from .aibn import AIBN2d, momentum_updates


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters, buffers and behaviour) that, in training with
    ``parts`` > 1, normalises each of ``parts`` equal consecutive chunks of the batch with its own
    statistics. Running statistics take one step per chunk, in chunk order, with the unbiased
    variance, as ``nn.BatchNorm2d`` would over the chunks one by one, by the same kernel (in the
    running buffers' dtype: float32 under bf16 autocast). The output has the input's dtype and
    memory format (channels_last under bf16).

    The chunks are normalised by the library's own batch norm: the batch is rearranged so that
    chunk p's channel c is channel ``p * C + c`` of a batch of N / parts images, normalised with
    the weight and bias repeated per chunk, and put back. That is 5 operations forward and 5
    backward (two copies, the two repeats, the batch norm), against 11 and 24 for the formula
    written out in tensor operations, each a kernel launch on a GPU. The running statistics take
    4 more (a buffer of zeros the batch norm writes each chunk's mean and variance into, one
    update of each running statistic for all chunks, the batch count): the batch is read once
    for its statistics."""

    parts: int = 1

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.parts == 1:
            return super().forward(x)
        if x.dim() != 4:
            raise ValueError(f"BatchNorm2d expects a 4-D input, got shape {tuple(x.shape)}")
        n, c = x.shape[:2]
        if n % self.parts:
            raise ValueError(f"a batch of {n} cannot be split into {self.parts} equal parts")
        merged = _parts_as_channels(x, self.parts)
        weight = None if self.weight is None else self.weight.repeat(self.parts)
        bias = None if self.bias is None else self.bias.repeat(self.parts)
        if not (self.track_running_stats and self.running_mean is not None):
            out = F.batch_norm(merged, None, None, weight, bias, True, 0.0, self.eps)
            return _channels_as_parts(out, self.parts)
        # With momentum 1 the kernel writes each merged channel's batch mean and unbiased variance
        # into zeroed buffers: the statistics it normalised with, computed once.
        statistics = torch.zeros(2, self.parts * c, dtype=self.running_mean.dtype, device=x.device)
        out = F.batch_norm(merged, statistics[0], statistics[1], weight, bias, True, 1.0, self.eps)
        self._update_running_statistics(statistics.view(2, self.parts, c))
        return _channels_as_parts(out, self.parts)

    @torch.no_grad()
    def _update_running_statistics(self, statistics: Tensor) -> None:
        """One running-statistics step per chunk, in order, from ``statistics``: 2 x parts x C, each
        chunk's batch mean and unbiased variance."""
        mean, unbiased = statistics
        if self.momentum is None:  # the cumulative average, as nn.BatchNorm2d takes it
            for part in range(self.parts):
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean[part], factor)
                self.running_var.lerp_(unbiased[part], factor)
        else:
            self.num_batches_tracked.add_(self.parts)
            momentum_updates(self.running_mean, mean, self.momentum)
            momentum_updates(self.running_var, unbiased, self.momentum)


def _is_channels_last(x: Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _parts_as_channels(x: Tensor, parts: int) -> Tensor:
    """(parts * M, C, H, W) -> (M, parts * C, H, W), chunk p's channel c as channel p * C + c, in
    x's memory format (one copy)."""
    n, c, h, w = x.shape
    rows = n // parts
    if _is_channels_last(x):  # stored as (parts, M, H, W, C); make it (M, H, W, parts, C)
        stored = x.permute(0, 2, 3, 1).view(parts, rows, h, w, c).permute(1, 2, 3, 0, 4).contiguous()
        return stored.view(rows, h, w, parts * c).permute(0, 3, 1, 2)
    return x.reshape(parts, rows, c, h, w).transpose(0, 1).contiguous().view(rows, parts * c, h, w)


def _channels_as_parts(y: Tensor, parts: int) -> Tensor:
    """The inverse of :func:`_parts_as_channels`."""
    rows, channels, h, w = y.shape
    c = channels // parts
    if _is_channels_last(y):
        stored = y.permute(0, 2, 3, 1).view(rows, h, w, parts, c).permute(3, 0, 1, 2, 4).contiguous()
        return stored.view(parts * rows, h, w, c).permute(0, 3, 1, 2)
    return y.reshape(rows, parts, c, h, w).transpose(0, 1).contiguous().view(parts * rows, c, h, w)


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
