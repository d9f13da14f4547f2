"""iics.image_source: on folders, symlinked images are read through their links, while names
that leave the folder are refused whatever they point at; image_names keeps only images."""
from __future__ import annotations

import errno
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_footage import image_bytes
from test_market import add_again

from iics.footage import FootageFormatError, index_footage
from iics.image_cache import build_image_cache, load_image_cache
from iics.image_source import ImageSource, SourceError


@pytest.fixture
def linked_folder(tmp_path):
    """images/ holding one real image and two symlinks to images stored outside it."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "far.jpg").write_bytes(image_bytes("far.jpg", (10, 200, 30)))
    (store / "secret.txt").write_text("outside the dataset")
    folder = tmp_path / "images"
    (folder / "cam2").mkdir(parents=True)
    (folder / "near.jpg").write_bytes(image_bytes("near.jpg", (200, 10, 30)))
    (folder / "cam2" / "linked.jpg").symlink_to(store / "far.jpg")  # absolute link target
    (folder / "relative.jpg").symlink_to("../store/far.jpg")        # relative link target
    return folder


def test_symlinked_images_are_listed_and_read(linked_folder):
    with ImageSource(linked_folder) as source:
        assert source.names() == ["cam2/linked.jpg", "near.jpg", "relative.jpg"]
        far = (linked_folder.parent / "store" / "far.jpg").read_bytes()
        assert source.read("cam2/linked.jpg") == far and source.read("relative.jpg") == far


def test_symlinked_sub_folders_are_listed_once_and_read(linked_folder, tmp_path):
    """A camera's crops kept elsewhere and linked in as a sub-folder are part of the folder; a
    link back to the folder itself (a cycle) is not followed round again."""
    elsewhere = tmp_path / "disk2" / "cam3"
    elsewhere.mkdir(parents=True)
    (elsewhere / "a.jpg").write_bytes(image_bytes("a.jpg", (0, 0, 255)))
    (linked_folder / "cam3").symlink_to(elsewhere, target_is_directory=True)
    (linked_folder / "cam2" / "loop").symlink_to(linked_folder, target_is_directory=True)
    with ImageSource(linked_folder) as source:
        assert source.names() == ["cam2/linked.jpg", "cam3/a.jpg", "near.jpg", "relative.jpg"]
        assert source.read("cam3/a.jpg") == (elsewhere / "a.jpg").read_bytes()


def test_a_folder_reached_by_two_paths_is_listed_under_both(linked_folder, tmp_path):
    """Only a link back to a folder above it is a cycle: a real folder beside a link to it, or two
    links to one store folder, are each listed (before, whichever came second was dropped, and
    the CSV rows naming it were 'not found')."""
    (linked_folder / "alias").symlink_to(linked_folder / "cam2", target_is_directory=True)
    shared = tmp_path / "store" / "cam3"
    shared.mkdir()
    (shared / "b.jpg").write_bytes(image_bytes("b.jpg", (0, 0, 255)))
    (linked_folder / "cam3").symlink_to(shared, target_is_directory=True)
    (linked_folder / "cam3copy").symlink_to(shared, target_is_directory=True)
    with ImageSource(linked_folder) as source:
        assert source.names() == ["alias/linked.jpg", "cam2/linked.jpg", "cam3/b.jpg", "cam3copy/b.jpg",
                                  "near.jpg", "relative.jpg"]
    csv_path = tmp_path / "images.csv"
    csv_path.write_text("image,camid\ncam2/linked.jpg,1\nalias/linked.jpg,2\ncam3/b.jpg,3\ncam3copy/b.jpg,3\n")
    assert list(index_footage(csv_path, linked_folder)["image"]) == [
        "cam2/linked.jpg", "alias/linked.jpg", "cam3/b.jpg", "cam3copy/b.jpg"]


@pytest.mark.parametrize("name", ["../store/secret.txt", "cam2/../../store/secret.txt", "", "cam2"])
def test_names_leaving_the_folder_or_not_files_are_refused(linked_folder, name):
    with ImageSource(linked_folder) as source, pytest.raises(SourceError, match="no file .* in the folder"):
        source.read(name)


def test_absolute_names_are_refused(linked_folder):
    absolute = str(linked_folder.parent / "store" / "secret.txt")
    with ImageSource(linked_folder) as source, pytest.raises(SourceError, match="expected a path relative to it"):
        source.read(absolute)


def test_footage_of_symlinked_images_extracts(linked_folder, tmp_path):
    csv_path = tmp_path / "images.csv"
    csv_path.write_text("image,camid\nnear.jpg,1\ncam2/linked.jpg,2\nrelative.jpg,2\n")
    index = index_footage(csv_path, linked_folder)
    build_image_cache(linked_folder, list(index["image"]), 12, 6, tmp_path / "images.npy", progress=False)
    cache = load_image_cache(tmp_path / "images.npy")
    assert cache.shape == (3, 12, 6, 3)
    assert cache[1, 6, 3, 1] > 150 and cache[0, 6, 3, 0] > 150  # green (linked) and red (real) images
    np.testing.assert_array_equal(cache[1], cache[2])


def test_broken_links_are_named_with_their_target_not_found(linked_folder, tmp_path):
    """A crop linked to a store that moved (or a camera folder on a disk not mounted) was 'not found'."""
    (linked_folder / "cam2" / "gone.jpg").symlink_to(tmp_path / "store" / "gone.jpg")
    (linked_folder / "cam4").symlink_to(tmp_path / "disk2" / "cam4", target_is_directory=True)
    csv_path = tmp_path / "images.csv"
    csv_path.write_text("image,camid\nnear.jpg,1\ncam2/gone.jpg,2\ncam4/a.jpg,4\ncam4/b.jpg,4\n")
    with pytest.raises(FootageFormatError) as err:
        index_footage(csv_path, linked_folder)
    assert str(err.value) == (
        f"{csv_path}: line 3: image 'cam2/gone.jpg' is a broken symbolic link in {linked_folder} (to "
        f"'{tmp_path / 'store' / 'gone.jpg'}', which does not exist); 2 more listed image(s) are behind broken links; "
        f"expected each link to lead to an existing file or folder")
    csv_path.write_text("image,camid\nnear.jpg,1\ncam4/a.jpg,4\n")
    with pytest.raises(FootageFormatError) as err:
        index_footage(csv_path, linked_folder)
    assert str(err.value) == (
        f"{csv_path}: line 3: image 'cam4/a.jpg': its folder 'cam4' is a broken symbolic link in {linked_folder} (to "
        f"'{tmp_path / 'disk2' / 'cam4'}', which does not exist); expected each link to lead to an existing file or folder")


def test_image_names_keep_images_and_drop_other_and_hidden_files(tmp_path):
    folder = tmp_path / "crops"
    (folder / "cam1").mkdir(parents=True)
    (folder / "__MACOSX" / "cam1").mkdir(parents=True)
    (folder / ".Trash-1000" / "files").mkdir(parents=True)
    for name in ("cam1/a.jpg", "cam1/B.PNG", "c.jpeg", "notes.txt", "cam1/.d.jpg", "__MACOSX/cam1/._a.jpg",
                 "__MACOSX/cam1/a.jpg", ".Trash-1000/files/p.jpg"):  # each rule on its own, not only the leading dot
        (folder / name).write_bytes(b"x")
    with ImageSource(folder) as source:
        assert source.image_names() == ["c.jpeg", "cam1/B.PNG", "cam1/a.jpg"]
    archive = tmp_path / "crops.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("x/1.png", "x/readme.md", "__MACOSX/x/._1.png", "__MACOSX/x/1.png", "x/.hidden.png",
                     "x/.thumbnails/1.png"):
            z.writestr(name, b"x")
    with ImageSource(archive) as source:
        assert source.image_names() == ["x/1.png"]


def patch_central_entry(zip_path, member: str, offset: int, value: bytes) -> None:
    """Overwrite bytes of one member's central directory entry: zipfile writes neither encrypted
    (flag bit 0, offset 8) nor Deflate64 (compression method 9, offset 10) members."""
    data = bytearray(Path(zip_path).read_bytes())
    at = data.index(b"PK\x01\x02")
    while data[at + 46: at + 46 + int.from_bytes(data[at + 28: at + 30], "little")] != member.encode():
        at = data.index(b"PK\x01\x02", at + 4)
    data[at + offset: at + offset + len(value)] = value
    Path(zip_path).write_bytes(bytes(data))


ENCRYPTED = (8, b"\x01\x00", "is encrypted, password required")
DEFLATE64 = (10, b"\x09\x00", "compression method is not supported")


@pytest.mark.parametrize("offset, value, reason", [ENCRYPTED, DEFLATE64], ids=["encrypted", "deflate64"])
def test_zip_members_zipfile_cannot_read_are_one_line(tmp_path, offset, value, reason):
    archive = tmp_path / "crops.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("cam1/a.jpg", image_bytes("a.jpg"))
    patch_central_entry(archive, "cam1/a.jpg", offset, value)
    with pytest.raises(SourceError) as err:
        build_image_cache(archive, ["cam1/a.jpg"], 8, 4, tmp_path / "images.npy", progress=False)
    message = str(err.value)
    assert message.startswith(f"{archive}: cannot read member 'cam1/a.jpg' (") and reason in message
    assert message.endswith("expected a zip without password, compressed with deflate, bzip2 or lzma (or stored)")
    assert not (tmp_path / "images.npy").exists()


def test_unreadable_file_in_a_folder_is_one_line(linked_folder, tmp_path, monkeypatch):
    """A crop the user may not read (as on chmod 000; faked, since the tests may run as root)."""
    def denied(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))
    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(SourceError, match=rf"^{linked_folder}: cannot read file 'near.jpg' \(Permission denied\)$"):
        build_image_cache(linked_folder, ["near.jpg"], 8, 4, tmp_path / "images.npy", progress=False)


def test_a_folder_that_cannot_be_listed_is_one_line_not_a_gap(tmp_path, monkeypatch):
    """A sub-folder the user may not list (chmod 000; faked, since the tests may run as root) would
    drop its images from the source without a word."""
    for name in ("cam1/a.jpg", "cam2/b.jpg", "cam2/deeper/c.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(image_bytes(name))
    assert ImageSource(tmp_path).names() == ["cam1/a.jpg", "cam2/b.jpg", "cam2/deeper/c.jpg"]
    listed = os.scandir

    def denied_in(blocked):
        def scandir(path):
            if os.path.abspath(path) == os.path.abspath(blocked):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return listed(path)
        return scandir

    monkeypatch.setattr(os, "scandir", denied_in(tmp_path / "cam2" / "deeper"))
    with pytest.raises(SourceError, match=rf"^{tmp_path}: cannot list its sub-folder 'cam2/deeper' \(Permission "
                                          r"denied\); make it readable, or move it out$"):
        ImageSource(tmp_path).names()
    monkeypatch.setattr(os, "scandir", denied_in(tmp_path))
    with pytest.raises(SourceError, match=rf"^{tmp_path}: cannot list the folder \(Permission denied\)$"):
        ImageSource(tmp_path).names()


def test_a_member_name_twice_in_a_zip_is_one_line(tmp_path):
    """zipfile lists both copies but reads only the last: one image was lost, one listed twice."""
    archive = tmp_path / "crops.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("cam1/", b"")
        z.writestr("cam1/a.jpg", b"first")
        z.writestr("cam1/b.jpg", b"b")
    add_again(archive, "cam1/a.jpg", b"second")
    add_again(archive, "cam1/a.jpg", b"third")
    add_again(archive, "cam1/", b"")  # a folder entry twice holds no file: harmless
    with ImageSource(archive) as source, pytest.raises(SourceError) as err:
        source.names()
    assert str(err.value) == (f"{archive}: member 'cam1/a.jpg' appears 3 times; expected each file once "
                              f"(only the last copy can be read)")
