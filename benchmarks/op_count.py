"""How many tensor operations (each at least one kernel launch on a GPU) one training step
dispatches, and which part of the step they come from. Runs on the CPU: the count of
operations does not depend on the device, while their launch cost does.

    python benchmarks/op_count.py                          # ResNet-50 with and without AIBN, 6 cameras x 8
    python benchmarks/op_count.py --backbones resnet18_aibn --height 64 --width 32

The step is the one iics.training.train_intra_camera takes: the C cameras' batches augmented in
one call, one forward of all of them with per-camera batch statistics, C classifier heads, the
summed cross-entropy, the backward and one SGD step. For each backbone it prints the operations
of each part (the forward split into those inside AIBN layers, inside other normalisation
layers, and the rest) and their total. View and allocation operations (which launch nothing)
are not counted. Then the same for one inter-camera step (a PK batch of 16 x 4 by default, one
forward, cross-entropy + batch-hard triplet). Prints two JSON lines per backbone. Each count is of
a second step, as every step of an epoch but the first runs (recorded lines before 2026-12-07's
`counted` field counted a first step: the optimiser's momentum buffers made, and since
`3d7a9d7` the augmentation's cached ranges). (Recorded lines with an `ops per camera batch`
field counted the former step of one forward per camera.)
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]
from measure import git_commit  # noqa: E402

from iics.augment import train_transform  # noqa: E402
from iics.losses import batch_hard_triplet  # noqa: E402
from iics.models import AIBN2d, ClassifierHead, build_backbone  # noqa: E402
from iics.models.batchnorm import split_batch_statistics  # noqa: E402
from iics.runtime import make_generator  # noqa: E402
from iics.settings import Optimizer  # noqa: E402

NO_KERNEL = {"view", "_unsafe_view", "expand", "t", "transpose", "permute", "unsqueeze", "squeeze", "detach",
             "alias", "as_strided", "slice", "select", "split", "unbind", "empty", "empty_like", "empty_strided",
             "promote_types", "_reshape_alias", "lift_fresh", "split_with_sizes", "unfold", "view_as_real", "view_as_complex"}


class OperationCounter(TorchDispatchMode):
    """Counts the operations dispatched inside it that launch work, by the label `part` holds."""

    def __init__(self) -> None:
        super().__init__()
        self.part = "other"
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__.rstrip("_") not in NO_KERNEL:  # unsqueeze_ as unsqueeze
            self.counts[self.part] += 1
        return func(*args, **(kwargs or {}))


def label_normalisation_layers(model: nn.Module, counter: OperationCounter) -> None:
    """While an AIBN2d or another normalisation layer runs forward, the counter counts under its
    kind; the backward pass is counted as one part (autograd gives no module boundaries)."""
    def enter(kind: str):
        def hook(module, inputs):
            counter.part = kind
        return hook

    def leave(module, inputs, output):
        counter.part = "forward, other"

    for module in model.modules():
        if isinstance(module, AIBN2d):
            kind = "forward, AIBN"
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.LayerNorm, nn.InstanceNorm2d)):
            kind = "forward, other normalisation"
        else:
            continue
        module.register_forward_pre_hook(enter(kind))
        module.register_forward_hook(leave)


def count_training_step(backbone: nn.Module, heads: list[nn.Module], images: torch.Tensor,
                        loss_of: Callable[[torch.Tensor], torch.Tensor]) -> Counter[str]:
    """The operations of one training step, by part: the augmentation of `images`, the forward
    and loss (`loss_of(augmented)`), the backward and one SGD step of `backbone` and `heads`.
    The second step of the run is counted, as every step of an epoch but its first runs: the
    first also makes what later steps reuse (the optimiser's momentum buffers, the constants
    cached per device)."""
    sgd = Optimizer(lr=0.005).build(backbone, heads)
    generator = make_generator(0, torch.device("cpu"))
    counter = OperationCounter()
    for model in (backbone, *heads):
        label_normalisation_layers(model, counter)

    def step() -> None:
        counter.part = "augmentation"
        x = train_transform(images, generator, 10, 0.5, 0.5)
        counter.part = "forward, other"
        loss = loss_of(x)
        counter.part = "backward"
        loss.backward()
        counter.part = "optimiser step"
        sgd.step()
        sgd.zero_grad(set_to_none=True)

    step()
    with counter:
        step()
    return counter.counts


def _random_images(n: int, args) -> torch.Tensor:
    return torch.randint(0, 256, (n, args.height, args.width, 3), dtype=torch.uint8)


def _row(name: str, args, fields: dict, counts: Counter[str], total_key: str) -> dict:
    return {"backbone": name, "input": f"{args.height}x{args.width}", **fields,
            **{f"ops: {part}": n for part, n in sorted(counts.items())}, total_key: sum(counts.values()),
            "counted": "second step",
            "torch": torch.__version__, "date": date.today().isoformat(), "commit": git_commit(REPO)}


def count_step(name: str, args) -> dict:
    backbone = build_backbone(name).train()
    heads = [ClassifierHead(backbone.feature_dim, 600).train() for _ in range(args.cameras)]
    labels = torch.randint(0, 600, (args.cameras, args.batch_per_camera))

    def loss_of(x: torch.Tensor) -> torch.Tensor:
        with split_batch_statistics(backbone, args.cameras):
            features = backbone(x).chunk(args.cameras)
        return sum(nn.functional.cross_entropy(head(f).float(), y) for head, f, y in zip(heads, features, labels))

    counts = count_training_step(backbone, heads, _random_images(args.cameras * args.batch_per_camera, args), loss_of)
    return _row(name, args, {"batch_per_camera": args.batch_per_camera, "cameras": args.cameras}, counts,
                "ops per intra-camera step")


def count_inter_step(name: str, args) -> dict:
    """The same count for one inter-camera step (iics.training.train_inter_camera): a PK batch of
    `ids_per_batch` x `images_per_id` images, one forward, cross-entropy + batch-hard triplet."""
    backbone = build_backbone(name).train()
    head = ClassifierHead(backbone.feature_dim, 600).train()
    batch = args.ids_per_batch * args.images_per_id
    labels = torch.arange(args.ids_per_batch).repeat_interleave(args.images_per_id)

    def loss_of(x: torch.Tensor) -> torch.Tensor:
        features = backbone(x)
        return nn.functional.cross_entropy(head(features).float(), labels) + batch_hard_triplet(features, labels, 0.3)

    counts = count_training_step(backbone, [head], _random_images(batch, args), loss_of)
    return _row(name, args, {"step": "inter", "batch": batch}, counts, "ops per inter-camera step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["resnet50", "resnet50_aibn"])
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--cameras", type=int, default=6)
    parser.add_argument("--batch-per-camera", type=int, default=8)
    parser.add_argument("--ids-per-batch", type=int, default=16)
    parser.add_argument("--images-per-id", type=int, default=4)
    args = parser.parse_args()
    for name in args.backbones:
        print(json.dumps(count_step(name, args)), flush=True)
        print(json.dumps(count_inter_step(name, args)), flush=True)


if __name__ == "__main__":
    main()
