"""Decode dataset images (zip or folder) once into a fixed-size uint8 (N, H, W, 3) ``.npy`` array."""

from __future__ import annotations

import glob
import io
import numbers
import os
import zlib
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from iics.errors import FileError
from iics.image_source import ImageSource

_BICUBIC = getattr(Image, "Resampling", Image).BICUBIC


def check_image_size(height: object, width: object) -> tuple[int, int]:
    """(height, width) as ints, or a ValueError unless both are integers >= 1."""
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) and v >= 1 for v in (height, width)):
        raise ValueError(f"height and width must be positive integers, got {height!r} x {width!r}")
    return int(height), int(width)


class ImageCacheError(FileError):
    """An image that cannot be decoded, or a cache file that is missing, cannot be written or has
    the wrong layout (`path`, `reason`)."""


# Pillow's modes for 16-bit greyscale. Its 32-bit mode "I" holds 16-bit data when read from a format
# whose greyscale has at most 16 bits: PNG (older Pillow versions open 16-bit PNGs as "I") and PGM
# (Pillow scales its maxval to 0..65535).
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
_SIXTEEN_BIT_FORMATS = ("PNG", "PPM")


def _to_rgb(img: Image.Image) -> Image.Image:
    """The image as 8-bit RGB. 16-bit greyscale is scaled (value / 257, rounded), not clipped as
    Pillow's convert does. Other integer modes (32-bit "I" from a TIFF, signed 16-bit) and float
    images are refused with a ValueError: their values have no known range to scale from."""
    if img.mode in _SIXTEEN_BIT_MODES or (img.mode == "I" and img.format in _SIXTEEN_BIT_FORMATS):
        values = np.asarray(img).astype(np.uint32)
        return Image.fromarray(((values + 128) // 257).astype(np.uint8)).convert("RGB")  # 2-D uint8: mode L
    if img.mode in ("I", "F") or img.mode.startswith("I;"):
        raise ValueError(
            f"{img.format} image of Pillow mode {img.mode!r}: 32-bit integer, signed or float pixel values have "
            f"no known range to scale to 8 bits; expected an 8-bit or 16-bit image"
        )
    return img.convert("RGB")


def decode_image(source: ImageSource, member: str, height: int, width: int) -> np.ndarray:
    """One image of the source as an RGB uint8 array resized to height x width (bicubic): how
    every image the pipeline sees is made, so new crops fed to a trained model go through it too.
    16-bit greyscale is scaled to 8 bits; 32-bit integer (mode "I" from a TIFF, say) and float
    ("F") images are refused with an ImageCacheError naming the file and the mode: whether their
    values span 8, 12, 16 or 32 bits cannot be told from the file."""
    data = source.read(member)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = _to_rgb(img)
    except UnidentifiedImageError as exc:  # its message shows the in-memory file's repr, not the image
        raise ImageCacheError(source.path, f"cannot decode image {member!r} (in no image format Pillow reads: not an "
                                           f"image, or damaged)") from exc
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError, zlib.error, EOFError) as exc:
        raise ImageCacheError(source.path, f"cannot decode image {member!r} ({exc})") from exc
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), _BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)


def build_image_cache(
    source_path: str | os.PathLike,
    images: Sequence[str],
    height: int,
    width: int,
    out_path: str | os.PathLike,
    progress: bool = True,
    block: int = 256,
) -> None:
    """Write the listed images of a zip or folder, resized to height x width, as one (N, H, W, 3) uint8 .npy.

    Rows follow the order of ``images``. Images are decoded one at a time and appended to a
    temporary file next to ``out_path`` in blocks of ``block`` rows, so memory stays bounded
    by one block whatever the dataset size; the file is renamed into place only when every
    image decoded, so no complete-looking file is left on failure or interruption (temporary
    files of a killed earlier run are removed first). A failed write (a full disk, say) is an
    ImageCacheError naming ``out_path`` and the OS error.
    """
    source_path, out_path = os.fspath(source_path), os.fspath(out_path)
    height, width = check_image_size(height, width)
    images = list(images)
    out_dir = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(out_dir, exist_ok=True)
    for stale in glob.glob(glob.escape(out_path) + ".*.tmp"):  # left by a killed run
        os.remove(stale)
    tmp_path = f"{out_path}.{os.getpid()}.tmp"
    header = {"descr": np.dtype(np.uint8).str, "fortran_order": False, "shape": (len(images), height, width, 3)}
    buffer = np.empty((block, height, width, 3), dtype=np.uint8)
    source = ImageSource(source_path)  # a missing or unreadable source fails here, before anything is written
    try:
        with source, open(tmp_path, "wb") as out:
            np.lib.format.write_array_header_1_0(out, header)
            bar = tqdm(images, desc=f"decode {os.path.basename(source_path)}", unit="img", disable=not progress)
            filled = 0
            for member in bar:
                buffer[filled] = decode_image(source, member, height, width)
                filled += 1
                if filled == block:
                    out.write(buffer.tobytes())
                    filled = 0
            out.write(buffer[:filled].tobytes())
        os.replace(tmp_path, out_path)
    except BaseException as exc:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        if isinstance(exc, OSError):  # reading fails as a ValueError: this is writing (a full disk, say)
            raise ImageCacheError(out_path, f"cannot write the image cache ({exc.strerror or exc})") from exc
        raise


def load_image_cache(path: str | os.PathLike) -> np.ndarray:
    """Memory-map a cache written by :func:`build_image_cache` (read-only)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageCacheError(path, "no such image cache (expected a .npy written by build_image_cache)")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ImageCacheError(path, f"not a readable .npy image cache ({exc})") from exc
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[3] != 3:
        raise ImageCacheError(path, f"expected a uint8 array of shape (N, H, W, 3), got {array.dtype} {tuple(array.shape)}")
    return array
