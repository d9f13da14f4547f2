"""ConvNeXt-Tiny/Small backbones in torchvision's parameter layout, with optional AIBN.

Module names follow torchvision: stem ``features.0.{0,1}`` (4x4 stride-4 conv, LayerNorm),
stages of blocks ``features.{1,3,5,7}``, downsampling ``features.{2,4,6}.{0,1}`` (LayerNorm,
2x2 stride-2 conv). A block ``features.S.B`` holds ``block.0`` (7x7 depthwise conv),
``block.2`` (LayerNorm over channels, channels-last; ``block.1``/``block.6`` are parameter-free
permutes), ``block.3``/``block.5`` (C -> 4C -> C linears around a GELU) and ``layer_scale``
(C x 1 x 1), and adds its output to the input through stochastic depth. Strides are ImageNet's
(output stride 32). The pooled feature is average pooling followed by torchvision's final
LayerNorm (``classifier.0`` there, ``norm`` here); the 1000-way linear is not part of the model.
:meth:`ConvNeXt.convert_imagenet_state_dict` maps torchvision checkpoints
(``convnext_tiny-983f1562.pth``, ``convnext_small-0c510722.pth``) and the official
facebookresearch release (``convnext_tiny_1k_224_ema.pth`` and the like) onto these names.

AIBN placement (``aibn=True``): ConvNeXt normalises with LayerNorm, over the channels at each
position, where ResNet uses BatchNorm. AIBN mixes per-sample-per-channel (instance) and batch
statistics taken over space, so it takes the place of the in-block LayerNorm, where BatchNorm
sat in ResNet's blocks: in every block of the last two stages (``features.5`` and
``features.7``) ``block.2`` becomes an :class:`AIBN2d` applied channels-first to the depthwise
conv output, and the block gets one learnable ``alpha`` (shape (1,), init 0.1), as the ResNet
AIBN blocks do. ``block.2.weight``/``bias`` keep their names, so the ImageNet LayerNorm affine
loads into it. Its running statistics are in no ImageNet checkpoint: they start at 0 and 1, and
when ImageNet weights are loaded the `init` stage sets them from the train images
(``estimate_running_statistics``) before the first round; training updates them from there. The
stem and downsampling LayerNorms stay LayerNorms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .aibn import AIBN2d
from .resnet import ALPHA_INIT

DIMS = (96, 192, 384, 768)
LN_EPS = 1e-6
LAYER_SCALE_INIT = 1e-6
AIBN_STAGES = (2, 3)  # stage indices (features.5 and features.7)

# official release: block part -> index in our ``block`` Sequential
_OFFICIAL_BLOCK_PARTS = {"dwconv": 0, "norm": 2, "pwconv1": 3, "pwconv2": 5}
_OFFICIAL_KEY = re.compile(r"^(downsample_layers|stages)\.(\d+)\.(\d+)\.(?:(\w+)\.)?(\w+)$")


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an N x C x H x W map, at each position."""

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Permute(nn.Module):
    """Parameter-free reordering of dimensions (holds torchvision's ``block.1``/``block.6`` slots)."""

    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(*self.dims)


class DropPath(nn.Module):
    """Stochastic depth, per sample: in training, zero a whole sample of the residual branch
    with probability ``p`` and scale the kept ones by 1 / (1 - p); identity in eval mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class CNBlock(nn.Module):
    """7x7 depthwise conv, norm, C -> 4C linear, GELU, 4C -> C linear, times ``layer_scale``,
    added to the input through :class:`DropPath`. With ``aibn`` the norm is an
    :class:`AIBN2d` on the channels-first conv output, mixed by the block's ``alpha``."""

    def __init__(self, dim: int, drop_path: float, aibn: bool = False) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim),
            Permute(0, 2, 3, 1),
            AIBN2d(dim) if aibn else nn.LayerNorm(dim, eps=LN_EPS),
            nn.Linear(dim, 4 * dim),
            nn.GELU(),
            nn.Linear(4 * dim, dim),
            Permute(0, 3, 1, 2),
        )
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), LAYER_SCALE_INIT))
        self.drop_path = DropPath(drop_path)
        self.alpha: nn.Parameter | None = None
        if aibn:
            self.alpha = nn.Parameter(torch.full((1,), ALPHA_INIT))

    def forward(self, x: Tensor) -> Tensor:
        dwconv, to_channels_last, norm, expand, act, project, to_channels_first = self.block
        y = dwconv(x)
        if self.alpha is not None:
            y = to_channels_last(norm(y, self.alpha))
        else:
            y = norm(to_channels_last(y))
        y = to_channels_first(project(act(expand(y))))
        return x + self.drop_path(self.layer_scale * y)


def _from_official(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename an official ConvNeXt state dict into this module's names.

    ``downsample_layers.i`` -> ``features.{2i}``; ``stages.i.j.{dwconv,norm,pwconv1,pwconv2}``
    -> ``features.{2i+1}.j.block.{0,2,3,5}``; ``stages.i.j.gamma`` (C,) ->
    ``features.{2i+1}.j.layer_scale`` (C, 1, 1); ``norm`` stays; ``head`` is dropped. Keys it
    does not know are kept as they are (and later reported as unexpected).
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith("head."):
            continue
        match = _OFFICIAL_KEY.match(key)
        if match is None:
            out[key] = value
            continue
        kind, index, j, part, leaf = match.groups()
        i = int(index)
        if kind == "downsample_layers" and part is None:
            out[f"features.{2 * i}.{j}.{leaf}"] = value
        elif kind == "stages" and part is None and leaf == "gamma":
            out[f"features.{2 * i + 1}.{j}.layer_scale"] = value.reshape(-1, 1, 1)
        elif kind == "stages" and part in _OFFICIAL_BLOCK_PARTS:
            out[f"features.{2 * i + 1}.{j}.block.{_OFFICIAL_BLOCK_PARTS[part]}.{leaf}"] = value
        else:
            out[key] = value
    return out


class ConvNeXt(nn.Module):
    """ConvNeXt trunk with global average pooling and the final LayerNorm.

    ``forward`` takes ImageNet-normalised N x 3 x H x W images and returns N x 768 features;
    ``forward_features`` returns the last map (N x 768 x H/32 x W/32). Stochastic depth grows
    linearly over all blocks from 0 to ``drop_path_rate`` and acts only in training.
    """

    def __init__(self, depths: Sequence[int], drop_path_rate: float, aibn: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(3, DIMS[0], kernel_size=4, stride=4), LayerNorm2d(DIMS[0], eps=LN_EPS))
        ]
        total, index = sum(depths), 0
        for stage, (depth, dim) in enumerate(zip(depths, DIMS)):
            blocks = []
            for _ in range(depth):
                rate = drop_path_rate * index / (total - 1)
                blocks.append(CNBlock(dim, rate, aibn=aibn and stage in AIBN_STAGES))
                index += 1
            layers.append(nn.Sequential(*blocks))
            if stage + 1 < len(DIMS):
                layers.append(
                    nn.Sequential(
                        LayerNorm2d(dim, eps=LN_EPS),
                        nn.Conv2d(dim, DIMS[stage + 1], kernel_size=2, stride=2),
                    )
                )
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.norm = nn.LayerNorm(DIMS[-1], eps=LN_EPS)
        self.feature_dim = DIMS[-1]
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """Return the last feature map (N x 768 x H/32 x W/32)."""
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        """Return average-pooled, layer-normalised features (N x 768)."""
        return self.norm(torch.flatten(self.pool(self.features(x)), 1))

    def convert_imagenet_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Map an ImageNet checkpoint onto this model's state-dict names.

        The official layout (``downsample_layers.*``/``stages.*`` keys) is renamed; in
        torchvision's, the final LayerNorm ``classifier.0`` becomes ``norm`` (``classifier.2``
        is left for the loader to drop). Any other layout passes through unchanged. AIBN
        layers stand where the checkpoint has LayerNorms, which carry no running statistics:
        unless the checkpoint has them, their current values are supplied.
        """
        if any(k.startswith(("downsample_layers.", "stages.")) for k in state):
            out = _from_official(state)
        else:
            out = {re.sub(r"^classifier\.0\.", "norm.", k): v for k, v in state.items()}
        for name, module in self.named_modules():
            if isinstance(module, AIBN2d):
                out.setdefault(f"{name}.running_mean", module.running_mean.clone())
                out.setdefault(f"{name}.running_var", module.running_var.clone())
        return out


def convnext_tiny(aibn: bool = False) -> ConvNeXt:
    """ConvNeXt-Tiny (depths 3, 3, 9, 3; stochastic depth up to 0.1), feature_dim 768."""
    return ConvNeXt((3, 3, 9, 3), drop_path_rate=0.1, aibn=aibn)


def convnext_small(aibn: bool = False) -> ConvNeXt:
    """ConvNeXt-Small (depths 3, 3, 27, 3; stochastic depth up to 0.4), feature_dim 768."""
    return ConvNeXt((3, 3, 27, 3), drop_path_rate=0.4, aibn=aibn)
