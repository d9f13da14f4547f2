"""Features of new person crops under a trained model: what a deployment runs once training is done.

    python -m iics.embedding runs/r04/model.pt path/to/crops --out crops.npz

reads every ``.jpg``, ``.jpeg`` and ``.png`` in a folder (sub-folders and symlinks included; hidden
files and folders skipped) or a zip, and writes ``names`` (their '/'-separated paths, sorted) and
``features`` (float32, one L2-normalised row per crop) to an ``.npz``. The crops go through exactly
what the pipeline's own evaluation does: decoded and resized (bicubic) to the size the model was
trained at, which the checkpoint records, then the flip-averaged features. Cosine distance,
``1 - a @ b.T``, is then what `evaluate` ranks by. The crops are decoded a batch at a time, so memory
does not grow with their number.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from iics.checkpoint import load_backbone, trained_input_size
from iics.features import extract_features, l2_normalize
from iics.image_cache import check_image_size, decode_image
from iics.image_source import IMAGE_EXTENSIONS, ImageSource
from iics.progress import show_progress
from iics.runtime import PRECISIONS, resolve_device, resolve_precision
from iics.settings import check_count


def embed_crops(
    model: nn.Module,
    source_path: str | os.PathLike,
    names: Sequence[str],
    input_size: tuple[int, int],
    device: torch.device,
    batch_size: int = 256,
    bf16: bool = False,
    progress: bool = True,
) -> torch.Tensor:
    """L2-normalised flip-averaged features (N, D), float32 on CPU, of the images ``names`` of a
    zip or folder, in that order: each decoded and resized to ``input_size`` (height, width) as
    `extract` builds the image cache, then `iics.features.extract_features`. Raises ValueError
    when ``names`` is empty or the size is not positive; an image that cannot be read or decoded
    raises an error naming it."""
    names = list(names)
    if not names:
        raise ValueError(f"{os.fspath(source_path)}: no images to embed")
    check_count("batch_size", batch_size)  # extract_features checks it too, but only after a batch is decoded
    height, width = check_image_size(*input_size)
    features = []
    with ImageSource(source_path) as source, tqdm(total=len(names), desc="embed", unit="img",
                                                   disable=not progress) as bar:
        for start in range(0, len(names), batch_size):
            chunk = names[start:start + batch_size]
            pixels = np.stack([decode_image(source, name, height, width) for name in chunk])
            features.append(extract_features(model, pixels, device, batch_size, progress=False, bf16=bf16))
            bar.update(len(chunk))
    return l2_normalize(torch.cat(features))


def _write_npz(path: str, names: list[str], features: np.ndarray) -> None:
    """``names`` and ``features`` to ``path`` through a temporary file renamed into place."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as out:
            np.savez(out, names=np.array(names, dtype=str), features=features)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m iics.embedding",
        description="Embed person crops with a trained iics model (runs/rNN/model.pt).",
    )
    parser.add_argument("model", help="a checkpoint written by the pipeline, e.g. runs/r04/model.pt")
    parser.add_argument("images", help=f"a folder or zip of crops (every {', '.join(IMAGE_EXTENSIONS)} file in it)")
    parser.add_argument("--out", required=True, help="the .npz to write (arrays `names` and `features`)")
    parser.add_argument("--height", type=int, help="input height; default: the size the model was trained at")
    parser.add_argument("--width", type=int, help="input width; default: the size the model was trained at")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="auto: bfloat16 on CUDA, float32 on the CPU")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    if not args.out.endswith(".npz"):
        parser.error(f"--out must name a .npz file, got {args.out!r}")
    if (args.height is None) != (args.width is None):
        parser.error("give both --height and --width, or neither")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        model, name = load_backbone(args.model)
        input_size = trained_input_size(args.model) if args.height is None else (args.height, args.width)
        if input_size is None:
            raise ValueError(f"{args.model}: the checkpoint records no training image size (an untrained `init` "
                             "model); pass --height and --width")
        device = resolve_device(args.device)
        bf16 = resolve_precision(args.precision, device)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)  # before the work, not after
        if os.path.isdir(args.out):
            raise ValueError(f"{args.out}: is a folder; expected the path of a .npz file to write")
        with ImageSource(args.images) as source:
            names = source.image_names()
        if not names:
            raise ValueError(f"{args.images}: no {', '.join(IMAGE_EXTENSIONS)} files found")
        features = embed_crops(model, args.images, names, input_size, device, args.batch_size, bf16,
                               progress=show_progress())
        _write_npz(args.out, names, features.numpy())
    except (OSError, ValueError) as error:  # a missing or unreadable file, a bad value: one line
        raise SystemExit(f"iics.embedding: {error}") from None
    print(f"{len(names)} crops from {args.images} at {input_size[0]} x {input_size[1]} -> {args.out} "
          f"({features.shape[1]}-d {name} features on {device})")


if __name__ == "__main__":
    main()
