"""Painting a person (legs, torso, bag, arms, head) and occluders onto a float RGB canvas."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .people import CLOTH, HAIR, SHOES, SKIN, Identity, pick


def _rect(canvas: np.ndarray, y0: float, y1: float, x0: float, x1: float, colour) -> None:
    """Fill an axis-aligned rectangle given in (fractional) pixel coordinates."""
    h, w = canvas.shape[:2]
    a, b = max(int(round(y0)), 0), min(int(round(y1)), h)
    c, d = max(int(round(x0)), 0), min(int(round(x1)), w)
    if a < b and c < d:
        canvas[a:b, c:d] = colour


def _ellipse(canvas: np.ndarray, cy: float, cx: float, ry: float, rx: float, colour, part=None) -> None:
    """Fill an ellipse; ``part(dy, dx)`` (offsets from the centre) restricts it further."""
    h, w = canvas.shape[:2]
    a, b = max(int(np.floor(cy - ry)), 0), min(int(np.ceil(cy + ry)) + 1, h)
    c, d = max(int(np.floor(cx - rx)), 0), min(int(np.ceil(cx + rx)) + 1, w)
    if a >= b or c >= d:
        return
    dy = np.arange(a, b, dtype=np.float32)[:, None] + 0.5 - cy
    dx = np.arange(c, d, dtype=np.float32)[None, :] + 0.5 - cx
    mask = (dy / ry) ** 2 + (dx / rx) ** 2 <= 1.0
    if part is not None:
        mask &= part(dy, dx)
    canvas[a:b, c:d][mask] = colour


def _stripes(canvas: np.ndarray, y0: float, y1: float, x0: float, x1: float, colour,
             period: float, vertical: bool) -> None:
    """Alternate bands of ``colour`` inside a rectangle."""
    h, w = canvas.shape[:2]
    a, b = max(int(round(y0)), 0), min(int(round(y1)), h)
    c, d = max(int(round(x0)), 0), min(int(round(x1)), w)
    if a >= b or c >= d:
        return
    period = max(period, 2.0)
    if vertical:
        on = ((np.arange(c, d) - x0) / period) % 1.0 >= 0.5
        canvas[a:b, c:d][:, on] = colour
    else:
        on = ((np.arange(a, b) - y0) / period) % 1.0 >= 0.5
        canvas[a:b, c:d][on] = colour


@dataclass(frozen=True)
class _Body:
    """Pixel geometry of one drawn person: ``u`` is the body height, ``facing`` +1/-1 in side views."""

    cx: float
    top: float
    feet: float
    u: float
    width: float
    view: str

    @property
    def side(self) -> bool:
        return self.view in ("left", "right")

    @property
    def facing(self) -> int:
        return 1 if self.view == "right" else -1

    @property
    def torso_hw(self) -> float:
        return (0.085 if self.side else 0.13) * self.u * self.width

    def y(self, fraction: float) -> float:
        """Image row at ``fraction`` of the body height below the top of the head."""
        return self.top + fraction * self.u


def _draw_legs(canvas: np.ndarray, body: _Body, ident: Identity, colours: dict, stride: float) -> None:
    """Trousers, shorts or skirt, bare legs and shoes; ``stride`` in [0, 1] spreads the legs."""
    u, hw = body.u, 0.05 * body.u * body.width
    if body.side:
        centres = (body.cx - stride * 0.07 * u, body.cx + stride * 0.07 * u)
    else:
        offset = 0.055 * u * body.width + 0.015 * u * stride
        centres = (body.cx - offset, body.cx + offset)
    bare_from = {"trousers": body.y(0.93), "shorts": body.y(0.67), "skirt": body.y(0.5)}[ident.lower_style]
    toe = body.facing * 0.035 * u if body.side else 0.0
    for x in centres:
        _rect(canvas, body.y(0.5), bare_from, x - hw, x + hw, colours["lower"])
        _rect(canvas, bare_from, body.y(0.93), x - 0.8 * hw, x + 0.8 * hw, colours["skin"])
        _rect(canvas, body.y(0.93), body.feet, x - hw + min(toe, 0), x + hw + max(toe, 0), colours["shoes"])
    if ident.lower_style == "skirt":
        half = 1.2 * body.torso_hw
        _rect(canvas, body.y(0.48), body.y(0.69), body.cx - half, body.cx + half, colours["lower"])


def _draw_torso(canvas: np.ndarray, body: _Body, ident: Identity, colours: dict) -> None:
    """Upper garment with its stripes, and the chest logo (front view only)."""
    x0, x1 = body.cx - body.torso_hw, body.cx + body.torso_hw
    _rect(canvas, body.y(0.145), body.y(0.51), x0, x1, colours["upper"])
    if ident.pattern != "plain":
        _stripes(canvas, body.y(0.145), body.y(0.5), x0, x1, colours["pattern"], 0.07 * body.u,
                 vertical=ident.pattern == "vstripes")
    if ident.logo >= 0 and body.view == "front":
        _rect(canvas, body.y(0.21), body.y(0.3), body.cx - 0.045 * body.u, body.cx + 0.045 * body.u, colours["logo"])


def _draw_backpack(canvas: np.ndarray, body: _Body, colours: dict) -> None:
    """Pack on the back (back view), straps (front view) or a slab behind the torso (side view)."""
    u, cx = body.u, body.cx
    if body.view == "back":
        half = 0.09 * u * body.width
        _rect(canvas, body.y(0.17), body.y(0.42), cx - half, cx + half, colours["bag"])
    elif body.view == "front":
        for sx in (-1, 1):
            x = cx + sx * 0.065 * u * body.width
            _rect(canvas, body.y(0.145), body.y(0.34), x - 0.012 * u, x + 0.012 * u, colours["bag"])
    else:
        back = cx - body.facing * body.torso_hw
        x0, x1 = sorted((back, back - body.facing * 0.08 * u))
        _rect(canvas, body.y(0.16), body.y(0.41), x0, x1, colours["bag"])


def _draw_side_bag(canvas: np.ndarray, body: _Body, ident: Identity, colours: dict) -> None:
    """Shoulder bag at the hip or handbag at the hand, on the side given by ``ident.bag_side``."""
    u = body.u
    if body.side:
        if ident.bag_side != body.facing:
            return  # carried on the far side: hidden
        x = body.cx + body.facing * 0.02 * u
    else:
        side = ident.bag_side * (-1 if body.view == "back" else 1)
        reach = 0.035 if ident.bag == "shoulder" else 0.06
        x = body.cx + side * (body.torso_hw + reach * u)
        if ident.bag == "shoulder":  # strap over the opposite shoulder
            strap = body.cx - side * 0.05 * u
            _rect(canvas, body.y(0.145), body.y(0.42), strap - 0.009 * u, strap + 0.009 * u, colours["bag"])
    if ident.bag == "shoulder":
        _rect(canvas, body.y(0.4), body.y(0.55), x - 0.055 * u, x + 0.055 * u, colours["bag"])
    else:
        _rect(canvas, body.y(0.48), body.y(0.59), x - 0.045 * u, x + 0.045 * u, colours["bag"])


def _draw_arms(canvas: np.ndarray, body: _Body, ident: Identity, colours: dict, stride: float) -> None:
    """Two arms beside the torso, or one swinging arm over it in side views."""
    u = body.u
    if body.side:
        xs = (body.cx + body.facing * (stride - 0.5) * 0.06 * u,)
    else:
        xs = (body.cx - body.torso_hw - 0.025 * u, body.cx + body.torso_hw + 0.025 * u)
    sleeve_end = body.y(0.47) if ident.long_sleeves else body.y(0.27)
    for x in xs:
        _rect(canvas, body.y(0.155), sleeve_end, x - 0.026 * u, x + 0.026 * u, colours["upper"])
        _rect(canvas, sleeve_end, body.y(0.51), x - 0.02 * u, x + 0.02 * u, colours["skin"])


def _draw_head(canvas: np.ndarray, body: _Body, ident: Identity, colours: dict) -> None:
    """Face and hair: the face shows from the front and side, only hair from the back."""
    u, hair = body.u, colours["hair"]
    cx, cy = body.cx + (body.facing * 0.012 * u if body.side else 0.0), body.y(0.075)
    ry, rx = 0.068 * u, 0.05 * u
    if ident.long_hair and body.view != "front":
        if body.side:
            x0, x1 = sorted((cx, cx - body.facing * 0.05 * u))
        else:
            x0, x1 = cx - 1.1 * rx, cx + 1.1 * rx
        _rect(canvas, cy, body.y(0.25), x0, x1, hair)
    _ellipse(canvas, cy, cx, ry, rx, hair if body.view == "back" else colours["skin"])
    if body.view == "front":
        _ellipse(canvas, cy, cx, ry, rx, hair, lambda dy, dx: dy < -0.3 * ry)
        if ident.long_hair:
            for sx in (-1, 1):
                x = cx + sx * 0.8 * rx
                _rect(canvas, cy - 0.3 * ry, body.y(0.22), x - 0.015 * u, x + 0.015 * u, hair)
    elif body.side:
        facing = body.facing
        _ellipse(canvas, cy, cx, ry, rx, hair, lambda dy, dx: (dy < -0.3 * ry) | (dx * facing < -0.1 * rx))


def draw_person(canvas: np.ndarray, ident: Identity, colours: dict, view: str,
                cx: float, feet: float, size: float, stride: float) -> None:
    """Paint a person ``size`` px tall with feet at (cx, feet), seen from ``view``, onto ``canvas``."""
    body = _Body(cx=cx, top=feet - size, feet=feet, u=size, width=ident.width, view=view)
    if ident.bag == "backpack" and body.side:
        _draw_backpack(canvas, body, colours)
    _draw_legs(canvas, body, ident, colours, stride)
    _draw_torso(canvas, body, ident, colours)
    if ident.bag == "backpack" and not body.side:
        _draw_backpack(canvas, body, colours)
    _draw_arms(canvas, body, ident, colours, stride)
    if ident.bag in ("shoulder", "handbag"):
        _draw_side_bag(canvas, body, ident, colours)
    _draw_head(canvas, body, ident, colours)


def part_colours(ident: Identity, rng: np.random.Generator) -> dict:
    """Palette colours of the identity with a small per-image colour jitter."""
    base = {
        "upper": CLOTH[ident.upper][0], "lower": CLOTH[ident.lower][0], "shoes": SHOES[ident.shoes][0],
        "hair": HAIR[ident.hair][0], "skin": SKIN[ident.skin][0], "pattern": CLOTH[ident.pattern_colour][0],
        "logo": CLOTH[max(ident.logo, 0)][0], "bag": CLOTH[ident.bag_colour][0],
    }
    light = float(np.exp(rng.normal(0, 0.06)))
    return {k: np.clip(np.array(v, dtype=np.float32) * light * np.exp(rng.normal(0, 0.04, 3)), 0, 255)
            for k, v in base.items()}


def occlude(canvas: np.ndarray, rng: np.random.Generator, background: np.ndarray) -> None:
    """Cover part of the frame with an object in front of the person."""
    h, w = canvas.shape[:2]
    if rng.random() < 0.5:  # something of the scene's own colour
        colour = background.mean(axis=(0, 1)) * rng.uniform(0.6, 1.3)
    else:
        colour = np.array(CLOTH[pick(rng, CLOTH)][0], dtype=np.float32)
    kind = rng.integers(3)
    if kind == 0:  # low object: bench, car, railing
        y0 = h * rng.uniform(0.55, 0.8)
        x0, x1 = sorted(rng.uniform(-0.3, 1.3, 2) * w)
        _rect(canvas, y0, h, min(x0, 0.1 * w), max(x1, 0.9 * w), colour)
    elif kind == 1:  # another pedestrian at one edge
        width = w * rng.uniform(0.2, 0.4)
        y0 = h * rng.uniform(0.05, 0.3)
        if rng.random() < 0.5:
            _rect(canvas, y0, h, 0, width, colour)
        else:
            _rect(canvas, y0, h, w - width, w, colour)
    else:  # sign, pole or patch somewhere on the body
        ph, pw = h * rng.uniform(0.15, 0.35), w * rng.uniform(0.3, 0.7)
        y0, x0 = rng.uniform(0.1 * h, h - ph), rng.uniform(0, w - pw)
        _rect(canvas, y0, y0 + ph, x0, x0 + pw, colour)
