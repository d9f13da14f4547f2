"""Tests for iics.models: ResNet layout, AIBN, classifier head, weight loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from iics.models import (
    BACKBONES,
    AIBN2d,
    ClassifierHead,
    build_backbone,
    load_imagenet_weights,
)

FEATURE_DIM = {"resnet18": 512, "resnet18_aibn": 512, "resnet50": 2048, "resnet50_aibn": 2048}
# torchvision parameter counts minus the 1000-way fc layer.
PARAM_COUNT = {"resnet18": 11_689_512 - 513_000, "resnet50": 25_557_032 - 2_049_000}


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: build_backbone(name) for name in BACKBONES}


# ---------------------------------------------------------------- AIBN


def _reference_aibn(x, weight, bias, a, mean_bn=None, var_bn=None, eps=1e-5):
    """Explicit per-sample, per-channel AIBN in float64."""
    x = x.double()
    weight, bias = weight.detach(), bias.detach()
    n, c = x.shape[:2]
    if mean_bn is None:  # training: batch stats from the whole batch
        mean_bn = torch.stack([x[:, j].mean() for j in range(c)])
        var_bn = torch.stack([((x[:, j] - mean_bn[j]) ** 2).mean() for j in range(c)])
    out = torch.empty_like(x)
    for i in range(n):
        for j in range(c):
            mu_in = x[i, j].mean()
            var_in = ((x[i, j] - mu_in) ** 2).mean()
            mu = (1 - a) * mu_in + a * float(mean_bn[j])
            var = (1 - a) * var_in + a * float(var_bn[j])
            out[i, j] = (x[i, j] - mu) / torch.sqrt(var + eps) * float(weight[j]) + float(bias[j])
    return out, mean_bn, var_bn


def _random_aibn(c: int) -> AIBN2d:
    layer = AIBN2d(c)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.5, 0.5)
    return layer


@pytest.mark.parametrize("a", [0.0, 0.1, 0.7, 1.0])
def test_aibn_train_matches_reference(a):
    torch.manual_seed(1)
    x = torch.randn(3, 4, 5, 6) * 2 + 1
    layer = _random_aibn(4).train()
    out = layer(x, torch.tensor([a]))
    ref, mean_bn, var_bn = _reference_aibn(x, layer.weight, layer.bias, a)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
    # running stats: momentum 0.1, biased batch variance
    torch.testing.assert_close(layer.running_mean, (0.1 * mean_bn).float(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(layer.running_var, (0.9 + 0.1 * var_bn).float(), atol=1e-6, rtol=1e-5)
    assert int(layer.num_batches_tracked) == 1


@pytest.mark.parametrize("a", [0.0, 0.1, 1.0])
def test_aibn_eval_matches_reference(a):
    torch.manual_seed(2)
    layer = _random_aibn(4)
    with torch.no_grad():
        layer.running_mean.uniform_(-1, 1)
        layer.running_var.uniform_(0.5, 2.0)
    layer.eval()
    x = torch.randn(2, 4, 3, 5)
    before = layer.running_mean.clone()
    out = layer(x, a)
    ref, _, _ = _reference_aibn(
        x, layer.weight, layer.bias, a, mean_bn=layer.running_mean, var_bn=layer.running_var
    )
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(layer.running_mean, before)
    # instance statistics come from each sample: result independent of batch mates
    torch.testing.assert_close(layer(x[:1], a), out[:1])


def test_aibn_alpha_one_equals_batchnorm_training():
    torch.manual_seed(3)
    x = torch.randn(4, 6, 7, 5)
    aibn = _random_aibn(6).train()
    bn = nn.BatchNorm2d(6).train()
    bn.load_state_dict(aibn.state_dict())
    torch.testing.assert_close(aibn(x, torch.ones(1)), bn(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(aibn.running_mean, bn.running_mean)


def test_aibn_alpha_clamped_and_receives_gradient():
    torch.manual_seed(4)
    x = torch.randn(2, 3, 4, 4)
    layer = _random_aibn(3)
    torch.testing.assert_close(layer(x, 5.0), layer(x, 1.0))
    torch.testing.assert_close(layer(x, -2.0), layer(x, 0.0))
    alpha = nn.Parameter(torch.full((1,), 0.3))
    (layer(x, alpha) * torch.randn_like(x)).sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().item() > 0


# ---------------------------------------------------------------- ResNet layout


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_parameter_count_matches_torchvision(models, name):
    n_plain = sum(p.numel() for p in models[name].parameters())
    assert n_plain == PARAM_COUNT[name]
    aibn = models[name + "_aibn"]
    n_blocks = len(aibn.layer3) + len(aibn.layer4)
    assert sum(p.numel() for p in aibn.parameters()) == PARAM_COUNT[name] + n_blocks


def test_state_dict_key_names(models):
    keys50 = set(models["resnet50"].state_dict())
    for key in [
        "conv1.weight", "bn1.running_mean", "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.weight", "layer4.2.bn3.running_var",
        "layer4.0.downsample.1.num_batches_tracked", "layer3.5.conv3.weight",
    ]:
        assert key in keys50
    assert not any(k.startswith("fc.") for k in keys50)
    keys18 = set(models["resnet18"].state_dict())
    assert "layer1.0.downsample.0.weight" not in keys18
    assert {"layer2.0.downsample.1.bias", "layer4.1.bn2.running_var"} <= keys18
    assert not any("conv3" in k for k in keys18)
    # convs x 1 key + norms x 5 keys: resnet50 has 53 convs/BNs, resnet18 has 20
    assert len(keys50) == 53 * 6 and len(keys18) == 20 * 6


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_aibn_variant_keys(models, name):
    plain = models[name].state_dict()
    aibn = models[name + "_aibn"].state_dict()
    alphas = sorted(k for k in aibn if k.endswith("alpha"))
    m = models[name + "_aibn"]
    assert alphas == sorted(
        [f"layer3.{i}.alpha" for i in range(len(m.layer3))]
        + [f"layer4.{i}.alpha" for i in range(len(m.layer4))]
    )
    assert set(aibn) - set(alphas) == set(plain)
    for k, v in plain.items():
        assert aibn[k].shape == v.shape
    assert all(float(aibn[k]) == pytest.approx(0.1) for k in alphas)
    assert isinstance(m.layer3[0].bn1, AIBN2d) and isinstance(m.layer4[0].downsample[1], AIBN2d)
    assert isinstance(m.layer2[0].bn1, nn.BatchNorm2d) and isinstance(m.bn1, nn.BatchNorm2d)


def _import_torchvision_models():
    try:
        import torchvision.models as tvm  # noqa: PLC0415
    except Exception as exc:  # torchvision may raise RuntimeError on import
        pytest.skip(f"torchvision not usable: {exc}")
    return tvm


TORCHVISION_LAYOUTS = Path(__file__).resolve().parent / "data" / "torchvision_layouts.json"


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2"])
def test_layout_matches_torchvisions_recorded_layout(models, name):
    """Every parameter and buffer under torchvision's name and shape, so its ImageNet files load
    key for key. Recorded by tests/record_torchvision_layouts.py: torchvision is no dependency and
    cannot be imported beside the CPU-only torch, so a live comparison would always be skipped here."""
    recorded = json.loads(TORCHVISION_LAYOUTS.read_text())["layouts"][name]
    ours = {k: list(v.shape) for k, v in models[name].state_dict().items()}
    assert ours == recorded


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2"])
def test_recorded_layout_is_torchvisions(name):
    """Where torchvision imports, the record must equal what it builds now."""
    tvm = _import_torchvision_models()
    ref = getattr(tvm, name)(weights=None).state_dict()
    ref = {k: list(v.shape) for k, v in ref.items() if not k.startswith(("fc.", "classifier."))}
    assert json.loads(TORCHVISION_LAYOUTS.read_text())["layouts"][name] == ref


@pytest.mark.parametrize("name", [n for n in BACKBONES if n.startswith("resnet")])
def test_last_stride_one_and_output_shape(models, name):
    model = models[name].eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        fmap = model.forward_features(x)
        feats = model(x)
    assert fmap.shape == (2, FEATURE_DIM[name], 4, 2)
    assert feats.shape == (2, FEATURE_DIM[name])
    assert model.feature_dim == FEATURE_DIM[name]
    torch.testing.assert_close(feats, fmap.mean(dim=(2, 3)))


def test_aibn_mixing_weights_receive_gradients(models):
    model = build_backbone("resnet18_aibn").train()
    model(torch.randn(2, 3, 64, 32)).sum().backward()
    assert model.layer3[0].alpha.grad is not None
    assert model.layer4[1].alpha.grad is not None


def test_unknown_backbone():
    with pytest.raises(ValueError, match="resnet50_aibn"):
        build_backbone("resnet101")


# ---------------------------------------------------------------- weights


def _save_checkpoint(model: nn.Module, path, wrap: str | None = None) -> dict:
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    feat = model.feature_dim
    sd["fc.weight"] = torch.randn(1000, feat)
    sd["fc.bias"] = torch.randn(1000)
    sd["bn1.num_batches_tracked"] = torch.tensor(7)
    torch.save({wrap: sd} if wrap else sd, path)
    return sd


@pytest.mark.parametrize("wrap", [None, "state_dict", "model"])
def test_round_trip_into_aibn(tmp_path, wrap):
    torch.manual_seed(5)
    src = build_backbone("resnet18")
    with torch.no_grad():
        for name, buf in src.named_buffers():
            if "running" in name:
                buf.uniform_(0.5, 1.5)
    path = tmp_path / "r18.pth"
    sd = _save_checkpoint(src, path, wrap)
    dst = build_backbone("resnet18_aibn", weights=str(path))
    got = dst.state_dict()
    for k, v in sd.items():
        if k.startswith("fc.") or k.endswith("num_batches_tracked"):
            continue
        assert torch.equal(got[k], v), k
    assert torch.equal(got["layer3.0.bn1.running_var"], sd["layer3.0.bn1.running_var"])
    assert float(got["layer4.1.alpha"]) == pytest.approx(0.1)
    # plain -> plain gives identical outputs
    plain = load_imagenet_weights(build_backbone("resnet18"), path).eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), src.eval()(x))


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth") as info:
        build_backbone("resnet18", weights=str(path))
    assert "torchvision" in str(info.value)


def test_wrong_keys_reported(models, tmp_path):
    sd = dict(models["resnet18"].state_dict())
    del sd["layer2.1.conv1.weight"]
    sd["layer9.0.bogus"] = torch.zeros(3)
    path = tmp_path / "bad_keys.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError) as info:
        load_imagenet_weights(build_backbone("resnet18"), path)
    msg = str(info.value)
    assert "bad_keys.pth" in msg
    assert "layer2.1.conv1.weight" in msg and "layer9.0.bogus" in msg
    assert "missing" in msg and "unexpected" in msg


def test_long_key_lists_truncated(models, tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(models["resnet50"].state_dict(), path)
    with pytest.raises(ValueError, match=r"\+\d+ more") as info:
        load_imagenet_weights(build_backbone("resnet18"), path)
    assert len(str(info.value)) < 4000


def test_shape_mismatch_reported(models, tmp_path):
    sd = dict(models["resnet18"].state_dict())
    sd["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    path = tmp_path / "bad_shape.pth"
    torch.save(sd, path)
    model = build_backbone("resnet18")
    before = model.conv1.weight.clone()
    with pytest.raises(ValueError, match="layer1.0.conv1.weight") as info:
        load_imagenet_weights(model, path)
    assert "bad_shape.pth" in str(info.value)
    assert "(64, 64, 1, 1)" in str(info.value)
    assert torch.equal(model.conv1.weight, before)  # nothing loaded on failure


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="list.pth"):
        load_imagenet_weights(build_backbone("resnet18"), path)


@pytest.mark.parametrize("case", ["cut in half", "text", "empty", "a whole pickled model"])
def test_an_unreadable_weights_file_is_one_value_error_naming_it(tmp_path, case):
    """A file not named <name>-<hash>.pth skips the hash check; torch.load's own errors
    (RuntimeError, KeyError, EOFError, the unpickler's refusal) were tracebacks in `init`."""
    path = tmp_path / "features.pth"
    model = build_backbone("resnet18")
    if case == "cut in half":
        torch.save(model.state_dict(), path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif case == "text":
        path.write_text("hello\n")
    elif case == "empty":
        path.write_bytes(b"")
    else:
        torch.save(model, path)  # weights_only refuses the class
    with pytest.raises(ValueError) as err:
        load_imagenet_weights(build_backbone("resnet18"), path)
    if case == "a whole pickled model":  # readable: neither "not readable" nor "truncated"
        assert str(err.value).startswith(f"{path}: it holds a pickled iics.models.resnet.ResNet object, not only")
    else:
        assert str(err.value).startswith(f"{path}: not a readable PyTorch weights file, or a truncated one (")
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- head


def test_classifier_head():
    torch.manual_seed(6)
    head = ClassifierHead(512, 700)
    assert not head.bn.bias.requires_grad
    assert torch.equal(head.bn.bias, torch.zeros(512))
    assert torch.equal(head.bn.weight, torch.ones(512))
    assert head.classifier.bias is None
    assert abs(head.classifier.weight.std().item() - 0.001) < 1e-4
    trainable = {n for n, p in head.named_parameters() if p.requires_grad}
    assert trainable == {"bn.weight", "classifier.weight"}
    logits = head(torch.randn(4, 512))
    assert logits.shape == (4, 700)
    logits.sum().backward()
    assert head.bn.bias.grad is None


def test_torchvision_file_names_are_checked_against_their_sha256(tmp_path):
    import hashlib

    from iics.models.weights import check_torchvision_hash

    model = build_backbone("resnet18")
    plain = tmp_path / "weights.pth"
    torch.save(model.state_dict(), plain)
    prefix = hashlib.sha256(plain.read_bytes()).hexdigest()[:8]
    named = tmp_path / f"resnet18-{prefix}.pth"
    plain.rename(named)
    assert check_torchvision_hash(named) is True
    load_imagenet_weights(build_backbone("resnet18"), named)
    wrong = tmp_path / "resnet18-0123abcd.pth"
    named.rename(wrong)
    with pytest.raises(ValueError, match=rf"resnet18-0123abcd.pth: SHA-256 starts with {prefix}, but the file name promises 0123abcd"):
        load_imagenet_weights(build_backbone("resnet18"), wrong)
    unnamed = tmp_path / "my_weights.pth"
    wrong.rename(unnamed)
    assert check_torchvision_hash(unnamed) is False


def test_mobilenet_v2_has_torchvision_layout_and_size():
    model = build_backbone("mobilenet_v2")
    state = model.state_dict()
    # torchvision's mobilenet_v2 has 3,504,872 parameters, 1,281,000 of them in the classifier
    assert sum(p.numel() for p in model.parameters()) == 3_504_872 - 1_281_000
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["features.1.conv.0.0.weight"].shape == (32, 1, 3, 3)  # t = 1: depthwise first
    assert state["features.1.conv.1.weight"].shape == (16, 32, 1, 1)
    assert state["features.2.conv.0.0.weight"].shape == (96, 16, 1, 1)  # t = 6: expansion first
    assert state["features.17.conv.2.weight"].shape == (320, 960, 1, 1)
    assert state["features.18.0.weight"].shape == (1280, 320, 1, 1)
    assert all(k.startswith("features.") for k in state)
    model.eval()
    x = torch.randn(2, 3, 64, 32)
    assert model.forward_features(x).shape == (2, 1280, 2, 1)
    assert model(x).shape == (2, 1280) and model.feature_dim == 1280


def test_mobilenet_v2_loads_a_checkpoint_with_classifier(tmp_path):
    source = build_backbone("mobilenet_v2")
    state = dict(source.state_dict())
    state["classifier.1.weight"] = torch.zeros(1000, 1280)
    state["classifier.1.bias"] = torch.zeros(1000)
    torch.save(state, tmp_path / "mobilenet.pth")
    target = load_imagenet_weights(build_backbone("mobilenet_v2"), tmp_path / "mobilenet.pth")
    assert torch.equal(target.features[5].conv[1][0].weight, source.features[5].conv[1][0].weight)
    source.eval(), target.eval()
    x = torch.randn(1, 3, 64, 32)
    assert torch.equal(source(x), target(x))
    del state["features.3.conv.1.1.running_var"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"broken.pth: checkpoint does not match the model: 1 missing keys \[features.3.conv.1.1.running_var\]"):
        load_imagenet_weights(build_backbone("mobilenet_v2"), tmp_path / "broken.pth")
