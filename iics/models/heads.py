"""Classification head used on top of backbone features."""

from __future__ import annotations

from torch import Tensor, nn


class ClassifierHead(nn.Module):
    """BatchNorm1d with a frozen zero bias, then a bias-free linear classifier.

    The BN weight starts at 1; classifier weights are drawn from N(0, 0.001^2).
    """

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.bn = nn.BatchNorm1d(feature_dim)
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        self.bn.bias.requires_grad_(False)
        self.classifier = nn.Linear(feature_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, mean=0.0, std=0.001)

    def forward(self, features: Tensor) -> Tensor:
        """Map N x feature_dim features to N x num_classes logits."""
        return self.classifier(self.bn(features))
