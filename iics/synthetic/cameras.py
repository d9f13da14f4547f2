"""Synthetic cameras: each has its own colour response, blur, noise, framing, viewpoint and scene."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

VIEWS = ("front", "back", "left", "right")
DOMINANT_VIEW = 0.8  # probability of a camera's usual viewpoint
MAX_HUE_TURN = 30.0  # degrees; cameras' hue shifts are spread over +- this (times camera_shift)
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR


@dataclass(frozen=True)
class Camera:
    """Imaging conditions of one camera (index is 1-based, as in file names)."""

    index: int
    hue_turn: np.ndarray  # 3 x 3 rotation about the grey axis: this camera's hue shift
    gain: np.ndarray
    saturation: float
    contrast: float
    brightness: float
    blur: float  # Gaussian sigma in pixels
    noise: float
    person_height: float  # fraction of the frame height
    feet: float  # fraction of the frame height
    view_probs: np.ndarray
    background: np.ndarray  # float32 template larger than the frame



def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: tuple[int, int]) -> np.ndarray:
    """Low-frequency RGB texture in [-1, 1], shape (height, width, 3)."""
    small = rng.integers(0, 256, size=(cells[0], cells[1], 3), dtype=np.uint8)
    big = Image.fromarray(small).resize((width, height), _BILINEAR)
    return np.asarray(big, dtype=np.float32) / 127.5 - 1.0


def _background_template(rng: np.random.Generator, height: int, width: int, shift: float) -> np.ndarray:
    """A camera's scene: tinted wall and floor, gradient, texture, stripes and clutter."""
    grey = rng.uniform(80, 170)
    wall = grey + rng.normal(0, 12 * shift, 3)
    floor = rng.uniform(70, 160) + rng.normal(0, 7.2 * shift, 3)
    bg = np.empty((height, width, 3), dtype=np.float32)
    horizon = int(height * rng.uniform(0.5, 0.85))
    bg[:horizon] = wall
    bg[horizon:] = floor
    bg += np.linspace(-1, 1, height, dtype=np.float32)[:, None, None] * rng.uniform(-25, 25)
    cells = (int(rng.integers(3, 7)), int(rng.integers(3, 7)))
    bg += _smooth_noise(rng, height, width, cells) * rng.uniform(8, 25)
    period = max(3, int(width * rng.uniform(0.12, 0.4)))
    stripes = ((np.arange(width) // max(1, period // 2)) % 2).astype(np.float32) * rng.uniform(-20, 20)
    bg[:horizon] += stripes[None, :, None]
    for _ in range(int(rng.integers(1, 5))):
        y0, x0 = int(rng.integers(0, height)), int(rng.integers(0, width))
        y1, x1 = y0 + int(height * rng.uniform(0.1, 0.6)), x0 + max(1, int(width * rng.uniform(0.04, 0.2)))
        bg[y0:y1, x0:x1] = grey + rng.normal(0, 50, 3)
    return np.clip(bg, 0, 255)


def hue_rotation(degrees: float) -> np.ndarray:
    """RGB matrix rotating colours about the grey axis by ``degrees`` (greys are unchanged)."""
    axis = np.full(3, 1 / np.sqrt(3))
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = np.deg2rad(degrees)
    turn = np.cos(angle) * np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * np.outer(axis, axis)
    return turn.astype(np.float32)


def make_cameras(num_cameras: int, height: int, width: int, rng: np.random.Generator,
                 shift: float = 1.0) -> list[Camera]:
    """One set of imaging conditions per camera; ``shift`` scales how far they depart from neutral."""
    first_view = int(rng.integers(len(VIEWS)))
    # Hue shifts spread evenly over +-MAX_HUE_TURN in random order, so every pair of cameras
    # disagrees on colours in a way that per-channel (instance) normalisation cannot undo.
    turns = rng.permutation(np.linspace(-MAX_HUE_TURN, MAX_HUE_TURN, num_cameras)) * shift
    cameras = []
    for k in range(num_cameras):
        probs = np.full(len(VIEWS), (1.0 - DOMINANT_VIEW) / (len(VIEWS) - 1))
        probs[(first_view + k) % len(VIEWS)] = DOMINANT_VIEW
        cameras.append(Camera(
            index=k + 1,
            hue_turn=hue_rotation(float(turns[k]) if num_cameras > 1 else 0.0),
            gain=np.clip(np.exp(rng.normal(0, 0.096 * shift, 3)), 0.5, 2.0).astype(np.float32),
            saturation=float(np.clip(np.exp(rng.normal(0, 0.144 * shift)), 0.3, 2.0)),
            contrast=float(np.clip(np.exp(rng.normal(0, 0.096 * shift)), 0.5, 2.0)),
            brightness=float(rng.normal(0, 8.8 * shift)),
            blur=float(rng.uniform(0.16, 1.12) * shift * height / 128),
            noise=float(rng.uniform(2, 9)),
            person_height=float(rng.uniform(0.78, 0.94)),
            feet=float(rng.uniform(0.94, 0.99)),
            view_probs=probs,
            background=_background_template(rng, int(np.ceil(height * 1.05)), int(np.ceil(width * 1.15)), shift),
        ))
    return cameras


def apply_camera(scene: np.ndarray, cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """Camera colour response, blur and sensor noise; returns uint8 RGB."""
    img = (scene @ cam.hue_turn.T) * cam.gain
    lum = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    img = lum[..., None] + cam.saturation * (img - lum[..., None])
    img = (img - 128.0) * cam.contrast + 128.0 + cam.brightness + rng.normal(0, 5)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if cam.blur > 0.15:
        img = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(cam.blur)), dtype=np.float32)
    else:
        img = img.astype(np.float32)
    img += rng.standard_normal(img.shape, dtype=np.float32) * cam.noise
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)
