"""Stage `synthesize`: write the embedded synthetic dataset as a Market-1501-layout zip."""
from __future__ import annotations

from common import ROOT, load_params

from iics.synthetic import write_synthetic_zip

SYNTHETIC_ZIP = ROOT / "data" / "synthetic" / "raw" / "Synthetic-reID.zip"


# The library's checks (iics/synthetic/dataset.py) name its arguments (num_cameras,
# queries_per_camera); the stage checks the same limits first, naming the params.yaml keys.
# Each: the key, whether its value passes (given all values), and what it must be.
LIMITS = (
    ("train_ids", lambda p: p["train_ids"] >= 1, ">= 1"),
    ("test_ids", lambda p: p["test_ids"] >= 1, ">= 1"),
    ("test_ids", lambda p: p["train_ids"] + p["test_ids"] <= 9999,
     "<= 9999 - synthetic.train_ids (at most 9999 identities fit 4-digit Market-1501 pids)"),
    ("cameras", lambda p: p["cameras"] <= 9, "<= 9 (single-digit c<cam> as in Market-1501)"),
    ("cameras_per_id", lambda p: 2 <= p["cameras_per_id"] <= p["cameras"],
     "in [2, synthetic.cameras] (each identity crosses cameras)"),
    ("images_per_camera", lambda p: 2 <= p["images_per_camera"] <= 1000,
     "in [2, 1000] (one image per camera of each test identity is a query; the others are its gallery matches)"),
    ("height", lambda p: p["height"] >= 16, ">= 16"),
    ("width", lambda p: p["width"] >= 8, ">= 8"),
    ("distractors", lambda p: p["distractors"] >= 0, ">= 0"),
    ("junk", lambda p: p["junk"] >= 0, ">= 0"),
    ("seed", lambda p: p["seed"] >= 0, ">= 0"),
)


def check_settings(p: dict) -> None:
    """A one-line exit naming the first synthetic.* key that is no integer or out of its limits."""
    for key, value in p.items():  # every synthetic setting is a count, a size or a seed
        if not isinstance(value, int) or isinstance(value, bool):
            raise SystemExit(f"params.yaml: synthetic.{key} must be an integer, got {value!r}")
    for key, ok, valid in LIMITS:
        if not ok(p):
            raise SystemExit(f"params.yaml: synthetic.{key} must be {valid}, got {p[key]}")


def main() -> None:
    p = load_params()["synthetic"]
    check_settings(p)
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
    except ValueError as error:  # a limit the library has and LIMITS lacks: its argument names
        raise SystemExit(f"params.yaml: synthetic: {error}") from None
    print(f"wrote {SYNTHETIC_ZIP.relative_to(ROOT)}: {summary}")


if __name__ == "__main__":
    main()
