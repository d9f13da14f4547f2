"""Record the parameter and buffer layout (name -> shape) of the torchvision models whose
layout iics's backbones keep, for tests/test_models.py to check without torchvision installed
(its PyPI wheels do not import beside the CPU-only torch build the project installs).

    python tests/record_torchvision_layouts.py     # needs torchvision; rewrites tests/data/torchvision_layouts.json

The classifier (`fc.*`, `classifier.*`) is left out: the backbones have none.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torchvision
import torchvision.models as tvm

OUT = Path(__file__).resolve().parent / "data" / "torchvision_layouts.json"
NAMES = ("resnet18", "resnet50", "mobilenet_v2")


def layout(name: str) -> dict[str, list[int]]:
    state = getattr(tvm, name)(weights=None).state_dict()
    return {key: list(value.shape) for key, value in state.items() if not key.startswith(("fc.", "classifier."))}


def main() -> None:
    record = {"torchvision": torchvision.__version__, "torch": torch.__version__,
              "layouts": {name: layout(name) for name in NAMES}}
    OUT.parent.mkdir(exist_ok=True)
    lines = [f'{{"torchvision": {json.dumps(record["torchvision"])}, "torch": {json.dumps(record["torch"])}, "layouts": {{']
    for i, (name, entries) in enumerate(record["layouts"].items()):
        lines.append(f" {json.dumps(name)}: {{")
        lines += [f"  {json.dumps(key)}: {json.dumps(shape)}," for key, shape in entries.items()]
        lines[-1] = lines[-1].rstrip(",")
        lines.append(" }" + ("," if i < len(NAMES) - 1 else ""))
    lines.append("}}")
    OUT.write_text("\n".join(lines) + "\n")  # one entry a line, so a diff shows what changed
    counts = ", ".join(f"{name} ({len(entries)} entries)" for name, entries in record["layouts"].items())
    print(f"{OUT}: {counts}")


if __name__ == "__main__":
    main()
