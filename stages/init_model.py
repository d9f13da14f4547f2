"""Stage `init`: the starting backbone (ImageNet weights from a local file, or random)."""
from __future__ import annotations

import torch
from common import ROOT, load_params, round_dir

from iics.checkpoint import save_backbone
from iics.models import build_backbone


def main() -> None:
    model_params = load_params()["model"]
    torch.manual_seed(int(model_params["seed"]))
    weights = model_params["weights"]
    if weights is not None:
        weights = str((ROOT / weights).resolve()) if not str(weights).startswith("/") else weights
    backbone = build_backbone(model_params["backbone"], weights=weights)
    save_backbone(backbone, model_params["backbone"], round_dir("init") / "model.pt")
    print(f"init: {model_params['backbone']} from {weights or 'random initialisation'}")


if __name__ == "__main__":
    main()
