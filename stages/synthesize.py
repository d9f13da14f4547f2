"""Stage `synthesize`: write the embedded synthetic dataset as a Market-1501-layout zip."""
from __future__ import annotations

from common import ROOT, load_params

from iics.synthetic import write_synthetic_zip

SYNTHETIC_ZIP = ROOT / "data" / "synthetic" / "raw" / "Synthetic-reID.zip"


def main() -> None:
    p = load_params()["synthetic"]
    for key, value in p.items():  # every synthetic setting is a count, a size or a seed
        if not isinstance(value, int) or isinstance(value, bool):
            raise SystemExit(f"params.yaml: synthetic.{key} must be an integer, got {value!r}")
    SYNTHETIC_ZIP.parent.mkdir(parents=True, exist_ok=True)
    try:
        summary = write_synthetic_zip(
            SYNTHETIC_ZIP,
            num_train_ids=p["train_ids"],
            num_test_ids=p["test_ids"],
            num_cameras=p["cameras"],
            cameras_per_id=p["cameras_per_id"],
            images_per_camera=p["images_per_camera"],
            height=p["height"],
            width=p["width"],
            num_distractors=p["distractors"],
            num_junk=p["junk"],
            seed=p["seed"],
        )
    except ValueError as error:  # the library names its arguments: num_cameras is synthetic.cameras
        raise SystemExit(f"params.yaml: synthetic: {error}") from None
    print(f"wrote {SYNTHETIC_ZIP.relative_to(ROOT)}: {summary}")


if __name__ == "__main__":
    main()
