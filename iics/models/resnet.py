"""ResNet-18/50 backbones in torchvision's parameter layout, with last stride 1.

Module names follow torchvision (``conv1, bn1, layer1..layer4``, blocks with
``conv1 bn1 conv2 bn2 [conv3 bn3] downsample.0/.1``) so torchvision ImageNet
state dicts load key-for-key; there is no ``fc``. The ``_aibn`` variants
replace every norm in layer3 and layer4 with :class:`AIBN2d` and give each of
those residual blocks one learnable ``alpha`` (shape (1,), init 0.1).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .aibn import AIBN2d
from .batchnorm import BatchNorm2d

ALPHA_INIT = 0.1


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class _Block(nn.Module):
    """Shared logic: optional per-block ``alpha`` and norm dispatch."""

    expansion = 1

    def __init__(self, aibn: bool) -> None:
        super().__init__()
        self.aibn = aibn
        self.alpha: nn.Parameter | None = None
        if aibn:
            self.alpha = nn.Parameter(torch.full((1,), ALPHA_INIT))

    def _make_norm(self, channels: int) -> nn.Module:
        return AIBN2d(channels) if self.aibn else BatchNorm2d(channels)

    def _norm(self, layer: nn.Module, x: Tensor) -> Tensor:
        if isinstance(layer, AIBN2d):
            return layer(x, self.alpha)
        return layer(x)

    def _shortcut(self, x: Tensor) -> Tensor:
        if self.downsample is None:
            return x
        return self._norm(self.downsample[1], self.downsample[0](x))

    def _make_downsample(self, in_ch: int, out_ch: int, stride: int) -> nn.Sequential | None:
        if stride == 1 and in_ch == out_ch:
            return None
        return nn.Sequential(_conv1x1(in_ch, out_ch, stride), self._make_norm(out_ch))


class BasicBlock(_Block):
    """Two 3x3 convolutions (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, aibn: bool = False) -> None:
        super().__init__(aibn)
        self.conv1 = _conv3x3(in_ch, planes, stride)
        self.bn1 = self._make_norm(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = self._make_norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = self._make_downsample(in_ch, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self._norm(self.bn1, self.conv1(x)))
        out = self._norm(self.bn2, self.conv2(out))
        return self.relu(out + self._shortcut(x))


class Bottleneck(_Block):
    """1x1 -> 3x3 (strided) -> 1x1 bottleneck (ResNet-50, torchvision v1.5)."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, aibn: bool = False) -> None:
        super().__init__(aibn)
        self.conv1 = _conv1x1(in_ch, planes)
        self.bn1 = self._make_norm(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = self._make_norm(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = self._make_norm(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = self._make_downsample(in_ch, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self._norm(self.bn1, self.conv1(x)))
        out = self.relu(self._norm(self.bn2, self.conv2(out)))
        out = self._norm(self.bn3, self.conv3(out))
        return self.relu(out + self._shortcut(x))


class ResNet(nn.Module):
    """ResNet trunk with last stride 1 and global average pooling.

    ``forward`` takes ImageNet-normalised N x 3 x H x W images and returns
    N x ``feature_dim`` pooled features; ``forward_features`` returns the
    layer4 map (H/16 x W/16).
    """

    def __init__(
        self,
        block: type[_Block],
        layers: Sequence[int],
        aibn: bool = False,
        last_stride: int = 1,
    ) -> None:
        super().__init__()
        self.aibn = aibn
        self._in_ch = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], stride=1, aibn=False)
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, aibn=False)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, aibn=aibn)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=last_stride, aibn=aibn)
        self.feature_dim = 512 * block.expansion
        self.pool = nn.AdaptiveAvgPool2d(1)
        self._init_weights()

    def _make_layer(
        self, block: type[_Block], planes: int, blocks: int, stride: int, aibn: bool
    ) -> nn.Sequential:
        layers = []
        for i in range(blocks):
            layers.append(block(self._in_ch, planes, stride if i == 0 else 1, aibn=aibn))
            self._in_ch = planes * block.expansion
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, AIBN2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """Return the layer4 feature map (N x feature_dim x H/16 x W/16)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: Tensor) -> Tensor:
        """Return globally average-pooled features (N x feature_dim), float32 also under bf16
        autocast: the average of a bf16 map is taken and kept in float32, since rounding it to
        bf16 would be the largest error left in the feature."""
        return torch.flatten(self.pool(self.forward_features(x).float()), 1)


def resnet18(aibn: bool = False) -> ResNet:
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]), feature_dim 512."""
    return ResNet(BasicBlock, (2, 2, 2, 2), aibn=aibn)


def resnet50(aibn: bool = False) -> ResNet:
    """ResNet-50 (Bottleneck, [3, 4, 6, 3]), feature_dim 2048."""
    return ResNet(Bottleneck, (3, 4, 6, 3), aibn=aibn)
