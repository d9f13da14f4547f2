"""Saving and loading a backbone with its classifier heads, and the errors a wrong file gets."""
import pytest
import torch

from iics.checkpoint import CheckpointError, load_backbone, load_heads, save_backbone
from iics.models import BACKBONES, ClassifierHead, build_backbone


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
        assert not any(t.is_meta for t in got.values())  # built on the meta device, every tensor replaced
        # The frozen zero BatchNorm bias stays frozen, as the head was built.
        assert [p.requires_grad for p in restored.parameters()] == [p.requires_grad for p in saved.parameters()]
        assert not restored.bn.bias.requires_grad
        features = torch.randn(4, model.feature_dim)
        assert torch.equal(restored.eval()(features), saved.eval()(features))


@pytest.mark.parametrize("name", BACKBONES)
def test_a_loaded_backbone_is_the_saved_one_built_the_plain_way(tmp_path, name):
    """load_backbone builds the network on the meta device and takes the file's tensors as its own:
    the same parameters and buffers (values, dtypes, contiguous strides, trainable) as building it
    and copying the file in, and the same training forward. A channels_last weight, as a bf16 run
    saves, comes back contiguous as a copy into a built network would."""
    torch.manual_seed(0)
    model = build_backbone(name).to(memory_format=torch.channels_last)
    model.train()(torch.randn(2, 3, 64, 32))  # running statistics away from their initial values
    save_backbone(model, name, tmp_path / "m.pt")
    loaded, _ = load_backbone(tmp_path / "m.pt", name)
    plain = build_backbone(name)
    plain.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True)["state_dict"])
    expected, got = plain.state_dict(), loaded.state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        assert not got[key].is_meta and got[key].dtype == expected[key].dtype, key
        assert got[key].stride() == expected[key].stride() and torch.equal(got[key], expected[key]), key
    assert [p.requires_grad for p in loaded.parameters()] == [True] * len(list(plain.parameters()))
    x = torch.randn(2, 3, 64, 32)
    torch.manual_seed(1)  # ConvNeXt's stochastic depth draws in training
    before = plain.train()(x)
    torch.manual_seed(1)
    assert torch.equal(loaded.train()(x), before)


def test_a_checkpoint_that_cannot_serve_is_one_checkpoint_error_naming_the_file(tmp_path):
    model = build_backbone("resnet18")
    save_backbone(model, "resnet18", tmp_path / "plain.pt")
    good = (tmp_path / "plain.pt").read_bytes()

    def reason(call, *args) -> str:
        with pytest.raises(CheckpointError) as caught:
            call(*args)
        assert str(caught.value) == f"{caught.value.path}: {caught.value.reason}" and "\n" not in str(caught.value)
        return caught.value.reason

    assert reason(load_backbone, tmp_path / "plain.pt", "resnet50") == (
        "holds a 'resnet18' backbone but the configuration asks for 'resnet50'")
    assert reason(load_heads, tmp_path / "plain.pt", model.feature_dim) == (
        "checkpoint has no classifier heads (expected an intra-camera model)")
    assert reason(load_backbone, tmp_path / "missing.pt") == (
        "checkpoint not found (expected a file written by an earlier stage)")
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    assert reason(load_backbone, tmp_path / "cut.pt").startswith("not a readable PyTorch checkpoint, or a truncated one (")
    # load_heads maps the file instead of reading it: a truncated one is still the same one line
    assert reason(load_heads, tmp_path / "cut.pt", model.feature_dim).startswith(
        "not a readable PyTorch checkpoint, or a truncated one (")
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    assert reason(load_backbone, tmp_path / "text.pt").startswith("not a readable PyTorch checkpoint, or a truncated one (")
    # Bytes of no checkpoint that the legacy unpickler reads as opcodes: IndexError and KeyError were tracebacks
    for first in (b"h", b"j", b"q", b"}"):
        (tmp_path / "odd.pt").write_bytes(first + b"ello world, not a checkpoint\n")
        assert reason(load_backbone, tmp_path / "odd.pt").startswith("not a readable PyTorch checkpoint, or a truncated one (")
    not_iics = "not an iics checkpoint (expected keys 'backbone', a name, and 'state_dict', a dict of tensors)"
    for payload in ({"weights": {}}, {"backbone": ["resnet18"], "state_dict": {}}, {"backbone": "resnet18", "state_dict": [1]}):
        torch.save(payload, tmp_path / "other.pt")
        assert reason(load_backbone, tmp_path / "other.pt") == not_iics
    torch.save({"backbone": "resnet18", "state_dict": model.state_dict(), "heads": [{"state_dict": {}}]},
               tmp_path / "headless.pt")
    assert reason(load_heads, tmp_path / "headless.pt", model.feature_dim) == (
        "its classifier heads are not a list of {'num_classes', 'state_dict'} entries")
    torch.save({"backbone": "resnet18", "state_dict": model.state_dict(),
                "heads": [{"num_classes": 3, "state_dict": ClassifierHead(model.feature_dim, 3).state_dict()},
                          {"num_classes": 3, "state_dict": ClassifierHead(model.feature_dim, 2).state_dict()}]},
               tmp_path / "misshapen_head.pt")
    assert reason(load_heads, tmp_path / "misshapen_head.pt", model.feature_dim).startswith(
        "classifier head 1 cannot be loaded (size mismatch for classifier.weight")
    payload = torch.load(tmp_path / "plain.pt", weights_only=True)
    payload["state_dict"]["fc.weight"] = torch.zeros(3)  # one weight the backbone does not have
    torch.save(payload, tmp_path / "extra.pt")
    extra = reason(load_backbone, tmp_path / "extra.pt")
    assert extra.startswith("its 'resnet18' weights cannot be loaded (Unexpected key(s) in state_dict: \"fc.weight\"")
    assert len(extra) < 200
    payload = torch.load(tmp_path / "plain.pt", weights_only=True)
    payload["state_dict"]["conv1.weight"] = payload["state_dict"]["conv1.weight"].double()
    torch.save(payload, tmp_path / "double.pt")  # read into the float32 network, as a copy into it would be
    assert load_backbone(tmp_path / "double.pt")[0].conv1.weight.dtype == torch.float32
    payload["state_dict"]["conv1.weight"] = torch.zeros(3, 3)
    torch.save(payload, tmp_path / "misshapen.pt")
    assert "size mismatch for conv1.weight" in reason(load_backbone, tmp_path / "misshapen.pt")


def test_checkpoint_records_the_training_image_size(tmp_path):
    from iics.checkpoint import trained_input_size

    model = build_backbone("resnet18")
    save_backbone(model, "resnet18", tmp_path / "trained.pt", input_size=(64, 32))
    assert trained_input_size(tmp_path / "trained.pt") == (64, 32)
    save_backbone(model, "resnet18", tmp_path / "init.pt")
    assert trained_input_size(tmp_path / "init.pt") is None
    torch.save({"backbone": "resnet18", "state_dict": {}, "input_size": "64x32"}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=r"odd.pt: records input_size '64x32'; expected \[height, width\]"):
        trained_input_size(tmp_path / "odd.pt")
    with pytest.raises(ValueError, match=r"input_size must be a positive \(height, width\), got \(0, 32\)"):
        save_backbone(model, "resnet18", tmp_path / "bad.pt", input_size=(0, 32))
    assert not (tmp_path / "bad.pt").exists()
