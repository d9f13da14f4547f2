"""Embedding new crops with a trained model (iics.embedding): the features equal those the
pipeline computes for the same images through its image cache, and bad input gets one line."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from iics.checkpoint import save_backbone
from iics.embedding import embed_crops, main
from iics.features import extract_features, l2_normalize
from iics.image_cache import build_image_cache, load_image_cache
from iics.image_source import ImageSource
from iics.models import build_backbone

CPU = torch.device("cpu")
SIZE = (32, 16)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_backbone("resnet18").eval()


@pytest.fixture()
def crops(tmp_path):
    """Seven noise crops of different sizes and formats, one in a sub-folder, plus a text file."""
    folder = tmp_path / "crops"
    (folder / "cam2").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(7):
        pixels = rng.integers(0, 256, size=(int(rng.integers(20, 90)), int(rng.integers(10, 45)), 3), dtype=np.uint8)
        name = f"cam2/p{i}.png" if i == 3 else f"p{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(pixels).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture()
def checkpoint(tmp_path, model):
    path = tmp_path / "model.pt"
    save_backbone(model, "resnet18", path, input_size=SIZE)
    return path


def test_features_equal_those_of_the_pipelines_image_cache(model, crops, tmp_path):
    with ImageSource(crops) as source:
        names = source.image_names()
    assert len(names) == 7 and "notes.txt" not in names
    build_image_cache(crops, names, *SIZE, tmp_path / "images.npy", progress=False)
    cache = load_image_cache(tmp_path / "images.npy")
    expected = l2_normalize(extract_features(model, cache, CPU, batch_size=3, progress=False))
    got = embed_crops(model, crops, names, SIZE, CPU, batch_size=3, progress=False)
    assert got.shape == (7, model.feature_dim)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)

    archive = tmp_path / "crops.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in names:
            z.write(crops / name, name)
    torch.testing.assert_close(embed_crops(model, archive, names, SIZE, CPU, batch_size=4, progress=False),
                               expected, rtol=0, atol=1e-6)


def test_command_line_writes_names_and_unit_features(model, crops, checkpoint, tmp_path, capsys):
    out = tmp_path / "new" / "crops.npz"  # its folder is made
    main([str(checkpoint), str(crops), "--out", str(out), "--batch-size", "2", "--device", "cpu"])
    assert "7 crops" in capsys.readouterr().out
    with np.load(out) as saved:
        names, features = list(saved["names"]), saved["features"]
    with ImageSource(crops) as source:
        assert names == source.image_names()
    assert features.dtype == np.float32 and features.shape == (7, model.feature_dim)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    expected = embed_crops(model, crops, names, SIZE, CPU, batch_size=2, progress=False)
    np.testing.assert_allclose(features, expected.numpy(), atol=1e-6)
    assert [p.name for p in out.parent.iterdir()] == ["crops.npz"]  # no temporary file left


@pytest.mark.parametrize("as_zip", [False, True])
def test_crops_in_hidden_folders_are_skipped(crops, checkpoint, tmp_path, capsys, as_zip):
    """README "Using the trained model": hidden files are skipped, and so are the crops inside a
    hidden folder (a USB stick's .Trash-1000/, a viewer's .thumbnails/), which `ls` leaves out too."""
    for name in (".Trash-1000/files/p0.jpg", "cam2/.thumbnails/p3.png", ".p9.jpg"):
        (crops / name).parent.mkdir(parents=True, exist_ok=True)
        (crops / name).write_bytes((crops / "p0.jpg").read_bytes())
    source = crops
    if as_zip:
        source = tmp_path / "crops.zip"
        with zipfile.ZipFile(source, "w") as archive:
            for path in sorted(crops.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(crops).as_posix())
    out = tmp_path / "crops.npz"
    main([str(checkpoint), str(source), "--out", str(out), "--device", "cpu"])
    assert "7 crops" in capsys.readouterr().out
    with np.load(out) as saved:
        assert list(saved["names"]) == ["cam2/p3.png", "p0.jpg", "p1.png", "p2.jpg", "p4.jpg", "p5.png", "p6.jpg"]


def test_an_untrained_checkpoint_needs_the_size_given(model, crops, tmp_path):
    untrained = tmp_path / "init.pt"
    save_backbone(model, "resnet18", untrained)
    out = tmp_path / "f.npz"
    with pytest.raises(SystemExit, match="records no training image size .* pass --height and --width"):
        main([str(untrained), str(crops), "--out", str(out)])
    assert not out.exists()
    main([str(untrained), str(crops), "--out", str(out), "--height", "32", "--width", "16", "--device", "cpu"])
    with np.load(out) as saved:
        assert saved["features"].shape == (7, model.feature_dim)


@pytest.mark.parametrize("case, message", [
    ("missing model", r"^iics.embedding: .*missing.pt: checkpoint not found"),
    ("no images", r"^iics.embedding: .*empty: no .jpg, .jpeg, .png files found$"),
    ("broken image", r"^iics.embedding: .*cannot decode image 'p9.jpg'"),
    ("missing folder", r"^iics.embedding: .*nowhere: no such file or folder"),
])
def test_bad_input_is_one_line_and_writes_nothing(case, message, crops, checkpoint, tmp_path):
    model_path, images = checkpoint, crops
    if case == "missing model":
        model_path = tmp_path / "missing.pt"
    elif case == "no images":
        images = tmp_path / "empty"
        images.mkdir()
        (images / "notes.txt").write_text("x")
    elif case == "broken image":
        (crops / "p9.jpg").write_bytes(b"not a jpeg")
    else:
        images = tmp_path / "nowhere"
    out = tmp_path / "f.npz"
    with pytest.raises(SystemExit, match=message):
        main([str(model_path), str(images), "--out", str(out), "--device", "cpu"])
    assert not out.exists()


def test_an_out_path_that_cannot_be_written_is_one_line_before_the_work(crops, checkpoint, tmp_path, monkeypatch):
    """A folder named like the .npz was an IsADirectoryError traceback after every crop was embedded."""
    folder = tmp_path / "d.npz"
    folder.mkdir()
    with pytest.raises(SystemExit, match=r"^iics.embedding: .*d.npz: is a folder; expected the path of a .npz file"):
        main([str(checkpoint), str(crops), "--out", str(folder), "--device", "cpu"])
    import iics.embedding

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(iics.embedding.np, "savez", refuse)  # a write that fails after the work: one line too
    with pytest.raises(SystemExit, match=r"^iics.embedding: \[Errno 13\] Permission denied$"):
        main([str(checkpoint), str(crops), "--out", str(tmp_path / "f.npz"), "--device", "cpu"])
    assert list(tmp_path.glob("f.npz*")) == []


def test_a_size_that_is_not_positive_is_one_line(crops, checkpoint, tmp_path):
    with pytest.raises(SystemExit, match=r"^iics.embedding: height and width must be positive integers, got 0 x 16$"):
        main([str(checkpoint), str(crops), "--out", str(tmp_path / "f.npz"), "--height", "0", "--width", "16"])
    assert not (tmp_path / "f.npz").exists()


@pytest.mark.parametrize("extra, message", [
    (["--height", "32"], "give both --height and --width"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--precision", "half"], "invalid choice: 'half'"),
])
def test_bad_options_are_usage_errors(extra, message, crops, checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(checkpoint), str(crops), "--out", str(tmp_path / "f.npz"), *extra])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_out_must_be_an_npz(crops, checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(checkpoint), str(crops), "--out", str(tmp_path / "features.npy")])
    assert "--out must name a .npz file" in capsys.readouterr().err


@pytest.mark.parametrize("setting, bar", [(None, False), ("0", False), ("1", True)])
def test_progress_bar_follows_the_stages_rule(model, crops, checkpoint, tmp_path, capsys, monkeypatch, setting, bar):
    """A bar only on a terminal (stderr is captured here, so not one) or with IICS_PROGRESS=1:
    the command drew it into piped logs."""
    if setting is None:
        monkeypatch.delenv("IICS_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("IICS_PROGRESS", setting)
    main([str(checkpoint), str(crops), "--out", str(tmp_path / "f.npz"), "--device", "cpu"])
    assert ("embed:" in capsys.readouterr().err) == bar


@pytest.mark.parametrize(("setting", "terminal", "bar"), [
    (None, False, False), (None, True, True), ("auto", False, False), ("auto", True, True),
    ("0", False, False), ("0", True, False), ("1", False, True), ("1", True, True),
])
def test_progress_rule(monkeypatch, setting, terminal, bar):
    """One rule for the stages and this command: IICS_PROGRESS=1 forces a bar, 0 forbids it,
    unset or auto draws one only when stderr is a terminal."""
    import sys
    from pathlib import Path

    import iics.embedding

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "stages"))
    import common

    if setting is None:
        monkeypatch.delenv("IICS_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("IICS_PROGRESS", setting)
    monkeypatch.setattr("os.isatty", lambda fd: terminal)
    assert iics.embedding.show_progress() is bar
    assert common.show_progress() is bar
