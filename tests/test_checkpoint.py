"""Saving and loading a backbone with its classifier heads, and the errors a wrong file gets."""
import pytest
import torch

from iics.checkpoint import load_backbone, load_heads, save_backbone
from iics.models import ClassifierHead, build_backbone


def test_checkpoint_round_trip_with_heads(tmp_path):
    torch.manual_seed(0)
    model = build_backbone("resnet18")
    heads = [ClassifierHead(model.feature_dim, 3), ClassifierHead(model.feature_dim, 5)]
    save_backbone(model, "resnet18", tmp_path / "m.pt", heads=heads)
    loaded, name = load_backbone(tmp_path / "m.pt", "resnet18")
    assert name == "resnet18"
    x = torch.randn(2, 3, 32, 16)
    model.eval(), loaded.eval()
    assert torch.allclose(model(x), loaded(x))
    assert [h.classifier.out_features for h in load_heads(tmp_path / "m.pt", model.feature_dim)] == [3, 5]
    with pytest.raises(ValueError, match="resnet50"):
        load_backbone(tmp_path / "m.pt", "resnet50")
    save_backbone(model, "resnet18", tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="no classifier heads"):
        load_heads(tmp_path / "plain.pt", model.feature_dim)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_backbone(tmp_path / "missing.pt")
