"""How exactly one forward for all cameras computes an intra-camera step, against one forward
per camera: the backbone gradient of one shipped intra-camera batch in float32 and bf16, by
either path, compared with the float64 gradient, and how far 3 SGD steps take the two paths apart.

    python benchmarks/one_forward_numerics.py                              # random weights (round 0's start)
    python benchmarks/one_forward_numerics.py --model runs/r03/model.pt    # round 3's model
    python benchmarks/one_forward_numerics.py --record                     # also append to the results

Intra-camera training takes the one-forward path (iics.models.batchnorm); this keeps the
per-camera path beside it for the comparison. Needs the configured dataset's image cache and
index under `--project` (this checkout by default; `dvc repro extract` makes them); DVC itself is not run.
The batch is round 0's first intra-camera batch: the intra_train stage's seed picks
`intra.batch_per_camera` train images of every camera and augments them as training does (all
cameras' images in one call). The heads' targets are the images' identities within their camera;
pseudo-labels would only renumber the classes. Stochastic depth (ConvNeXt) is off: its masks are
random, drawn in another order by the two paths.

For each path and precision (float32; bf16 = bfloat16 autocast + channels_last, as
`precision: bf16` trains) it prints the relative L2 error of all backbone gradients against the
float64 per-camera gradient, their cosine, and the median of the per-parameter relative errors
(which a few ill-conditioned tensors cannot dominate: from random weights, float32 gets the
stem's and first block's gradients 1e-3 off and every other one about 1e-5); then, from the
same weights and the same augmented images, the relative distance between the backbone weights
of the two paths after 3 SGD steps (the intra optimiser of params.yaml). Prints a table and one
JSON line; `--record` appends the line to benchmarks/results/one_forward_numerics.jsonl.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from measure import git_commit  # noqa: E402

from iics.augment import train_transform  # noqa: E402
from iics.checkpoint import load_backbone, trained_input_size  # noqa: E402
from iics.image_cache import load_image_cache  # noqa: E402
from iics.index import camera_positions, read_index, split_rows  # noqa: E402
from iics.models import ClassifierHead, build_backbone  # noqa: E402
from iics.models.batchnorm import split_batch_statistics  # noqa: E402
from iics.models.convnext import DropPath  # noqa: E402
from iics.runtime import compute_context, make_generator, place_batch, place_model, resolve_device  # noqa: E402
from iics.sampling import per_camera_batches  # noqa: E402
from iics.settings import Augment, Optimizer  # noqa: E402


RESULTS = REPO / "benchmarks" / "results" / "one_forward_numerics.jsonl"
STEPS = 3
# (name in the output, dtype of weights and input, bf16 autocast, one forward for all cameras)
CASES = (
    ("float32_per_camera", torch.float32, False, False),
    ("float32_one_forward", torch.float32, False, True),
    ("bf16_per_camera", torch.float32, True, False),
    ("bf16_one_forward", torch.float32, True, True),
)


def shipped_batches(project: Path, params: dict,
                    count: int) -> tuple[list[torch.Tensor], list[list[torch.Tensor]], list[int]]:
    """Round 0's first `count` intra-camera batches, augmented: (inputs of C x batch_per_camera
    images, each camera's targets per batch, classes per camera)."""
    prepared = project / "data" / params["dataset"]["name"] / "prepared"
    if not (prepared / "images.npy").is_file():
        raise SystemExit(f"one_forward_numerics: {prepared}/images.npy not found; run `dvc repro extract` there "
                         "or point --project at a checkout that has run it")
    index = read_index(prepared / "index.csv")
    train = split_rows(index, "train")
    _, cameras = camera_positions(index["camid"][train])
    pids = np.asarray(index["pid"])[train]
    labels = np.zeros(len(train), dtype=np.int64)
    classes = []
    for c in range(int(cameras.max()) + 1):
        _, labels[cameras == c] = np.unique(pids[cameras == c], return_inverse=True)
        classes.append(int(labels[cameras == c].max()) + 1)
    pixels = torch.from_numpy(np.asarray(load_image_cache(prepared / "images.npy")[train]))
    seed = int(params["model"]["seed"]) * 100_003 + 1  # stage_seed(params, t=0, offset=1): intra_train@r00
    a = params["augment"]
    augment = Augment(pad=a["pad"], flip_p=a["flip_p"], erasing_p=a["erasing_p"])
    iterations = per_camera_batches(cameras, int(params["intra"]["batch_per_camera"]), np.random.default_rng(seed))
    generator = make_generator(seed, torch.device("cpu"))
    inputs, targets = [], []
    for batch in iterations[:count]:
        inputs.append(train_transform(pixels[torch.as_tensor(np.concatenate(batch))], generator, augment.pad,
                                      augment.flip_p, augment.erasing_p))
        targets.append([torch.as_tensor(labels[idx]) for idx in batch])
    return inputs, targets, classes


def intra_loss(backbone: nn.Module, heads: list[nn.Module], x: torch.Tensor, targets: list[torch.Tensor],
               bf16: bool, one_forward: bool) -> torch.Tensor:
    """The summed per-camera cross-entropy of one intra-camera step, by either path."""
    parts = len(heads)
    with compute_context(x.device, bf16):
        if one_forward:
            with split_batch_statistics(backbone, parts):
                features = backbone(place_batch(x, bf16)).chunk(parts)
        else:
            features = [backbone(place_batch(part, bf16)) for part in x.chunk(parts)]
        logits = [head(f) for head, f in zip(heads, features)]
    # as training takes the loss (on float32 logits), float64 kept float64
    return sum(nn.functional.cross_entropy(z.to(torch.promote_types(z.dtype, torch.float32)), t)
               for z, t in zip(logits, targets))


def prepared_copy(backbone: nn.Module, heads: list[nn.Module], dtype: torch.dtype, bf16: bool,
                  device: torch.device) -> tuple[nn.Module, list[nn.Module]]:
    model = place_model(copy.deepcopy(backbone).to(dtype).train(), device, bf16)
    return model, [copy.deepcopy(h).to(device, dtype).train() for h in heads]


def gradient(backbone, heads, x, targets, dtype, bf16, one_forward, device) -> list[torch.Tensor]:
    """The backbone's gradient, one float64 tensor per parameter."""
    model, hs = prepared_copy(backbone, heads, dtype, bf16, device)
    intra_loss(model, hs, x.to(device, dtype), [t.to(device) for t in targets], bf16, one_forward).backward()
    return [p.grad.detach().double().cpu() for p in model.parameters()]


def compare(g: list[torch.Tensor], reference: list[torch.Tensor]) -> dict:
    """Relative L2 error and cosine of the whole gradient; and the median over parameter tensors
    of each one's relative error, which a few tensors computed far worse than the rest cannot move."""
    flat, ref = torch.cat([v.reshape(-1) for v in g]), torch.cat([v.reshape(-1) for v in reference])
    per_tensor = [float((a - b).norm() / b.norm()) for a, b in zip(g, reference) if b.norm() > 0]
    return {"rel_error": float((flat - ref).norm() / ref.norm()),
            "cosine": float(nn.functional.cosine_similarity(flat, ref, dim=0)),
            "median_tensor_rel_error": float(np.median(per_tensor))}


def weights_apart(backbone, heads, inputs, targets, dtype, bf16, sgd: Optimizer, device) -> float:
    """Relative distance of the backbone weights after `len(inputs)` SGD steps per camera vs in one forward."""
    trained = []
    for one_forward in (False, True):
        model, hs = prepared_copy(backbone, heads, dtype, bf16, device)
        optimiser = sgd.build(model, hs)
        for x, t in zip(inputs, targets):
            loss = intra_loss(model, hs, x.to(device, dtype), [y.to(device) for y in t], bf16, one_forward)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        trained.append(torch.cat([p.detach().reshape(-1).double() for p in model.parameters()]))
    return float((trained[0] - trained[1]).norm() / trained[0].norm())


def _short(value: float) -> str:
    return f"{value:.1e}" if abs(value) < 0.01 else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an iics checkpoint (e.g. runs/r03/model.pt); "
                        "default: random weights as the init stage makes them (model.seed)")
    parser.add_argument("--project", type=Path, default=REPO,
                        help="checkout whose params.yaml and prepared dataset to use (default: this one)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--record", action="store_true", help=f"append the JSON line to {RESULTS.relative_to(REPO)}")
    args = parser.parse_args()
    device = resolve_device(args.device)
    params = yaml.safe_load((args.project / "params.yaml").read_text())
    inputs, targets, classes = shipped_batches(args.project, params, STEPS)
    if args.model is not None:
        backbone, name = load_backbone(args.model)
        size = trained_input_size(args.model)
        if size is not None and tuple(size) != tuple(inputs[0].shape[2:]):
            print(f"note: {args.model} was trained on {size[0]} x {size[1]} images, the batch is "
                  f"{inputs[0].shape[2]} x {inputs[0].shape[3]}", file=sys.stderr)
        weights = str(args.model)
    else:
        name = params["model"]["backbone"]
        torch.manual_seed(int(params["model"]["seed"]))
        backbone = build_backbone(name)  # as the init stage builds runs/init/model.pt without ImageNet weights
        weights = f"random (model.seed {params['model']['seed']})"
    for module in backbone.modules():
        if isinstance(module, DropPath):
            module.p = 0.0
    torch.manual_seed(0)
    heads = [ClassifierHead(backbone.feature_dim, n) for n in classes]
    x, t = inputs[0], targets[0]

    reference = gradient(backbone, heads, x, t, torch.float64, False, False, device)
    gradients = {"float64_one_forward": compare(gradient(backbone, heads, x, t, torch.float64, False, True, device),
                                                reference)}
    for case, dtype, bf16, one_forward in CASES:
        gradients[case] = compare(gradient(backbone, heads, x, t, dtype, bf16, one_forward, device), reference)
    i = params["intra"]
    sgd = Optimizer(lr=i["lr"], backbone_lr_scale=i["backbone_lr_scale"], momentum=i["momentum"],
                    weight_decay=i["weight_decay"])
    apart = {label: weights_apart(backbone, heads, inputs, targets, dtype, bf16, sgd, device)
             for label, dtype, bf16 in (("float64", torch.float64, False), ("float32", torch.float32, False),
                                        ("bf16", torch.float32, True))}

    n, _, height, width = x.shape
    row = {
        "weights": weights, "backbone": name,
        "batch": f"{len(heads)} cameras x {n // len(heads)} images, {height} x {width}",
        "gradient_vs_float64": {k: {m: float(f"{v:.4g}") for m, v in r.items()} for k, r in gradients.items()},
        f"weights_apart_after_{STEPS}_steps": {k: float(f"{v:.4g}") for k, v in apart.items()},
        "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "date": date.today().isoformat(), "commit": git_commit(REPO),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }
    columns = [case for case, *_ in CASES]
    print(f"{name}, {row['batch']}, {weights}; relative L2 error of all backbone gradients against float64 "
          "(cosine for bf16):")
    print("| weights | " + " | ".join(c.replace("_", " ") for c in columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    cells = [_short(gradients[c]["rel_error"]) + (f" (cos {gradients[c]['cosine']:.3f})" if c.startswith("bf16") else "")
             for c in columns]
    print(f"| {weights} | " + " | ".join(cells) + " |")
    print("median over parameter tensors of their relative error: "
          + ", ".join(f"{c.replace('_', ' ')} {_short(gradients[c]['median_tensor_rel_error'])}" for c in columns))
    print(f"float64, one forward against per camera: {_short(gradients['float64_one_forward']['rel_error'])}")
    print(f"backbone weights apart after {STEPS} SGD steps (relative), per camera against one forward: "
          + ", ".join(f"{k} {v:.2g}" for k, v in apart.items()))
    line = json.dumps(row)
    print(line)
    if args.record:
        with open(RESULTS, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
