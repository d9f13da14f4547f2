"""Stage `init`: the starting backbone (ImageNet weights from a local file, or random)."""
from __future__ import annotations

import sys

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


def main() -> None:
    params = load_params()
    model_params = params["model"]
    torch.manual_seed(integer(params, "model.seed", minimum=0))
    weights = model_params["weights"]
    if weights is None and params["dataset"]["name"] != "synthetic":
        print(NO_WEIGHTS_WARNING.format(backbone=model_params["backbone"], dataset=params["dataset"]["name"]), file=sys.stderr)
    if weights is not None:
        weights = str((ROOT / weights).resolve()) if not str(weights).startswith("/") else weights
    try:
        backbone = build_backbone(model_params["backbone"], weights=weights)
    except FileNotFoundError as exc:
        raise SystemExit(
            f"init: {exc}. README \"ImageNet weights\" says which file to fetch; or set model.weights=null "
            "to start from random weights (far below the paper's results)"
        ) from None
    except ValueError as exc:
        raise SystemExit(f"init: {exc}") from None
    if statistics_from_train_images(model_params["backbone"], weights):
        train = split_rows(load_index(params, "init"), "train")
        batches = estimate_aibn_statistics(backbone, load_images(params, "init"), compute_device(params),
                                           integer(params, "features.batch_size"), rows=train, progress=show_progress())
        print(f"init: AIBN running statistics estimated from {len(train)} train images ({batches} batches)")
    save_backbone(backbone, model_params["backbone"], round_dir("init") / "model.pt")
    print(f"init: {model_params['backbone']} from {weights or 'random initialisation'}")


if __name__ == "__main__":
    main()
