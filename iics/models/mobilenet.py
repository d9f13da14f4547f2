"""MobileNetV2 backbone in torchvision's parameter layout (``features.0`` .. ``features.18``).

The light choice for edge deployment: 1280-d pooled features at about a tenth of ResNet-50's
compute. Module names follow torchvision (stem ``features.0.{0,1}``, inverted residual blocks
``features.N.conv.*``, last 1x1 conv ``features.18.{0,1}``) so a torchvision ImageNet state dict
loads key-for-key; there is no ``classifier``. Strides are ImageNet's (output stride 32).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .batchnorm import BatchNorm2d

# (expansion t, output channels c, repeats n, first stride s), as in the MobileNetV2 paper
INVERTED_RESIDUAL_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


def _conv_bn_relu6(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        BatchNorm2d(out_ch),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """1x1 expansion (unless t = 1), 3x3 depthwise, 1x1 linear projection; identity shortcut
    when the block keeps resolution and width."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(_conv_bn_relu6(in_ch, hidden, kernel=1))
        layers += [
            _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_shortcut = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_shortcut else out


class MobileNetV2(nn.Module):
    """MobileNetV2 trunk with global average pooling; ``forward`` returns N x 1280 features."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, STEM_CHANNELS, stride=2)]
        in_ch = STEM_CHANNELS
        for expansion, out_ch, repeats, stride in INVERTED_RESIDUAL_SETTINGS:
            for i in range(repeats):
                layers.append(InvertedResidual(in_ch, out_ch, stride if i == 0 else 1, expansion))
                in_ch = out_ch
        layers.append(_conv_bn_relu6(in_ch, LAST_CHANNELS, kernel=1))
        self.features = nn.Sequential(*layers)
        self.feature_dim = LAST_CHANNELS
        self.pool = nn.AdaptiveAvgPool2d(1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last feature map (N x 1280 x H/32 x W/32)."""
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        """Globally average-pooled features (N x 1280), pooled in float32 as in ResNet."""
        return torch.flatten(self.pool(self.features(x).float()), 1)


def mobilenet_v2() -> MobileNetV2:
    """MobileNetV2 (width 1.0), feature_dim 1280."""
    return MobileNetV2()
