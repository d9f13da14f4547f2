"""One synthetic image: a camera's scene, the person seen from a view, an occluder, the camera's response."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cameras import VIEWS, Camera, apply_camera
from .drawing import draw_person, occlude, part_colours
from .people import Identity


@dataclass(frozen=True)
class Record:
    """One image to render: zip folder, file name, kind (person/distractor/junk), identity, camera."""

    folder: str
    name: str
    kind: str
    identity: Identity | None
    camera: int


def render_image(record: Record, cam: Camera, height: int, width: int, rng: np.random.Generator,
                 occlusion_prob: float) -> np.ndarray:
    """Render one record as a (height, width, 3) uint8 image."""
    bh, bw = cam.background.shape[:2]
    oy, ox = int(rng.integers(0, bh - height + 1)), int(rng.integers(0, bw - width + 1))
    background = cam.background[oy:oy + height, ox:ox + width]
    canvas = background * np.float32(np.exp(rng.normal(0, 0.06)))
    if record.identity is not None:
        ident = record.identity
        view = VIEWS[int(rng.choice(len(VIEWS), p=cam.view_probs))]
        size = height * cam.person_height * ident.height * rng.uniform(0.98, 1.02)
        feet = height * (cam.feet + rng.normal(0, 0.006))
        cx = width * (0.5 + rng.normal(0, 0.015))
        if record.kind == "distractor":  # badly framed detection: too close, too far or off-centre
            mode = rng.integers(3)
            if mode == 0:
                size *= rng.uniform(1.4, 2.2)
                feet = height * rng.uniform(0.9, 1.9)
            elif mode == 1:
                size *= rng.uniform(0.35, 0.6)
            else:
                cx = width * rng.choice([-1, 1]) * rng.uniform(0.3, 0.45) + width * 0.5
        draw_person(canvas, ident, part_colours(ident, rng), view, cx, feet, size, float(rng.uniform(0, 1)))
        if record.kind == "person" and rng.random() < occlusion_prob:
            occlude(canvas, rng, background)
    return apply_camera(canvas, cam, rng)
