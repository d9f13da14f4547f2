"""Stage `init`: the starting backbone (ImageNet weights from a local file, or random)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from common import ROOT, load_images, load_index, load_params, round_dir, show_progress
from params_io import compute_device, integer

from iics.checkpoint import save_backbone
from iics.calibration import estimate_aibn_statistics
from iics.index import split_rows
from iics.models import build_backbone, statistics_from_train_images

NO_WEIGHTS_WARNING = """\
########################################################################################
WARNING: model.weights is null, so {backbone} starts from RANDOM weights on the real
dataset {dataset!r}. IICS starts from an ImageNet backbone; without one, results will be
far below the paper's. Fetch the file named in README "ImageNet weights", put it at
data/weights/, and set model.weights (the paper configurations already point there).
########################################################################################"""


def tracked_weights_file(weights) -> str:
    """The absolute path of `model.weights`, which must name a file in data/weights/: that folder
    is the stage's dependency, so DVC reruns `init` when a file there changes. One elsewhere would
    be read but never hashed, and a changed file would leave the old model in place."""
    folder = ROOT / "data" / "weights"
    path = Path(os.path.abspath(ROOT / str(weights)))  # '..' folded, links not followed: a link in the folder is fine
    if path == folder or (folder in path.parents and path.is_dir()):
        files = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in (".pth", ".pt")) \
            if folder.is_dir() else []
        holds = f"data/weights/ holds {', '.join(files)}" if files else "data/weights/ holds no .pth file yet"
        raise SystemExit(f"init: model.weights {weights!r} is a folder, expected the weights file in it "
                         f"({holds}): set model.weights=data/weights/<file>")
    if folder not in path.parents:
        raise SystemExit(f"init: model.weights {weights!r} is outside data/weights/, the folder DVC tracks for this "
                         f"stage, so a change to the file would not rerun init; copy or link it into data/weights/ "
                         f"and set model.weights=data/weights/{path.name}")
    return str(path)


def shown_weights(text: str, path: str) -> str:
    """`text` (a message naming the absolute `path`) with the path as the project names it."""
    return text.replace(path, str(Path(path).relative_to(ROOT)))


def main() -> None:
    params = load_params()
    model_params = params["model"]
    torch.manual_seed(integer(params, "model.seed", minimum=0))
    weights = model_params["weights"]
    if weights is None and params["dataset"]["name"] != "synthetic":
        print(NO_WEIGHTS_WARNING.format(backbone=model_params["backbone"], dataset=params["dataset"]["name"]), file=sys.stderr)
    if weights is not None:
        weights = tracked_weights_file(weights)
        if not os.path.isfile(weights):
            raise SystemExit(
                f"init: {shown_weights(weights, weights)}: ImageNet weights not found. README \"ImageNet weights\" "
                "says which file to fetch; or set model.weights=null to start from random weights (far below the "
                "paper's results)")
    try:
        backbone = build_backbone(model_params["backbone"], weights=weights)
    except ValueError as exc:
        raise SystemExit(f"init: {shown_weights(str(exc), weights) if weights else exc}") from None
    if statistics_from_train_images(model_params["backbone"], weights):
        index = load_index(params, "init")
        train = split_rows(index, "train")
        batches = estimate_aibn_statistics(backbone, load_images(params, "init", index), compute_device(params),
                                           integer(params, "features.batch_size"), rows=train, progress=show_progress())
        print(f"init: AIBN running statistics estimated from {len(train)} train images ({batches} batches)")
    save_backbone(backbone, model_params["backbone"], round_dir("init") / "model.pt")
    print(f"init: {model_params['backbone']} from {weights or 'random initialisation'}")


if __name__ == "__main__":
    main()
