"""Saving and loading a backbone with its classifier heads, and the errors a wrong file gets."""
import pytest
import torch

from iics.checkpoint import load_backbone, load_heads, save_backbone
from iics.models import ClassifierHead, build_backbone


def test_checkpoint_round_trip_with_heads(tmp_path):
    torch.manual_seed(0)
    model = build_backbone("resnet18")
    heads = [ClassifierHead(model.feature_dim, 3), ClassifierHead(model.feature_dim, 5)]
    for head in heads:  # away from the values a fresh head is built with, so loading has to restore them
        head.train()(torch.randn(8, model.feature_dim))
        torch.nn.init.uniform_(head.bn.weight, 0.5, 1.5)
    save_backbone(model, "resnet18", tmp_path / "m.pt", heads=heads)
    loaded, name = load_backbone(tmp_path / "m.pt", "resnet18")
    assert name == "resnet18"
    x = torch.randn(2, 3, 32, 16)
    model.eval(), loaded.eval()
    assert torch.allclose(model(x), loaded(x))
    loaded_heads = load_heads(tmp_path / "m.pt", model.feature_dim)
    assert [h.classifier.out_features for h in loaded_heads] == [3, 5]
    for saved, restored in zip(heads, loaded_heads):
        expected, got = saved.state_dict(), restored.state_dict()
        assert expected.keys() == got.keys()
        assert all(torch.equal(expected[k], got[k]) for k in expected)
    with pytest.raises(ValueError, match="resnet50"):
        load_backbone(tmp_path / "m.pt", "resnet50")
    save_backbone(model, "resnet18", tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="no classifier heads"):
        load_heads(tmp_path / "plain.pt", model.feature_dim)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_backbone(tmp_path / "missing.pt")


def test_checkpoint_records_the_training_image_size(tmp_path):
    from iics.checkpoint import trained_input_size

    model = build_backbone("resnet18")
    save_backbone(model, "resnet18", tmp_path / "trained.pt", input_size=(64, 32))
    assert trained_input_size(tmp_path / "trained.pt") == (64, 32)
    save_backbone(model, "resnet18", tmp_path / "init.pt")
    assert trained_input_size(tmp_path / "init.pt") is None
    with pytest.raises(ValueError, match=r"input_size must be a positive \(height, width\), got \(0, 32\)"):
        save_backbone(model, "resnet18", tmp_path / "bad.pt", input_size=(0, 32))
    assert not (tmp_path / "bad.pt").exists()
