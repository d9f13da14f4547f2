"""Seeded synthetic multi-camera person re-ID data, written as a Market-1501-layout zip.

Identities are combinations of discrete attributes (clothing colours, hair, sleeves,
stripes, logo, bag, body shape); they come in small groups whose members differ in
one or two attributes, so look-alike people exist. Every camera has its own hue
shift (a rotation of colours about the grey axis, as under different light sources), colour
cast, saturation, contrast, brightness, blur, noise, background, framing and
dominant viewpoint (front / back / side decides whether a logo, backpack or bag is
seen). Each image adds pose, placement and colour jitter and sometimes an occluder.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageFilter

VIEWS = ("front", "back", "left", "right")
DOMINANT_VIEW = 0.8  # probability of a camera's usual viewpoint
MAX_HUE_TURN = 30.0  # degrees; cameras' hue shifts are spread over +- this (times camera_shift)
ZIP_DATE = (2020, 1, 1, 0, 0, 0)
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR

# (RGB, relative frequency); dark and neutral clothes are the most common, as in street data.
CLOTH = (
    ((28, 28, 30), 2.2), ((62, 62, 68), 1.5), ((128, 128, 130), 1.6), ((226, 226, 222), 2.0),
    ((32, 42, 88), 1.3), ((52, 92, 170), 1.0), ((135, 175, 215), 1.0), ((175, 36, 42), 1.0),
    ((102, 32, 44), 0.7), ((48, 118, 62), 0.7), ((98, 104, 56), 0.6), ((222, 196, 64), 0.6),
    ((222, 122, 42), 0.5), ((222, 142, 172), 0.7), ((112, 62, 142), 0.5), ((106, 72, 46), 0.8),
    ((202, 182, 146), 1.0), ((160, 146, 102), 0.8),
)
SHOES = (((25, 25, 25), 4.0), ((230, 230, 230), 3.0), ((96, 64, 40), 1.5), ((120, 120, 120), 1.5), ((180, 40, 40), 0.5))
HAIR = (((20, 18, 18), 5.0), ((55, 38, 28), 3.0), ((100, 70, 45), 1.5), ((200, 170, 110), 1.0), ((150, 150, 150), 0.5))
SKIN = (((236, 200, 170), 2.0), ((210, 165, 125), 2.0), ((160, 115, 80), 1.0), ((100, 70, 50), 1.0))
LOWER_STYLES = (("trousers", 6.0), ("shorts", 2.0), ("skirt", 1.5))
PATTERNS = (("plain", 6.0), ("hstripes", 1.5), ("vstripes", 1.0))
BAGS = (("none", 4.0), ("backpack", 2.5), ("shoulder", 1.5), ("handbag", 1.0))
# Look-alikes differ in one clearly visible attribute, sometimes plus one more of any kind.
MAJOR = ("upper", "lower", "pattern", "bag", "lower_style", "long_sleeves")
MINOR = ("shoes", "hair", "long_hair", "logo", "bag_colour", "shape")
MIN_COLOUR_DISTANCE = 70.0


@dataclass(frozen=True)
class Identity:
    """Appearance attributes of one person; colour fields index the palettes above."""

    upper: int
    lower: int
    shoes: int
    hair: int
    skin: int
    long_hair: bool
    long_sleeves: bool
    lower_style: str
    pattern: str
    pattern_colour: int
    logo: int  # -1: none; else a CLOTH index, seen only from the front
    bag: str
    bag_colour: int
    bag_side: int  # -1 / +1: image side of the bag in a front view
    width: float
    height: float

    def signature(self) -> tuple:
        """Attributes that can change how the person looks (unused colours zeroed)."""
        return (self.upper, self.lower, self.shoes, self.hair, self.skin, self.long_hair,
                self.long_sleeves, self.lower_style, self.pattern,
                self.pattern_colour if self.pattern != "plain" else -1, self.logo, self.bag,
                self.bag_colour if self.bag != "none" else -1,
                self.bag_side if self.bag != "none" else 0, round(self.width, 1), round(self.height, 1))


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


@dataclass(frozen=True)
class Record:
    """One image to render: zip folder, file name, kind (person/distractor/junk), identity, camera."""

    folder: str
    name: str
    kind: str
    identity: Identity | None
    camera: int


def _pick(rng: np.random.Generator, table: tuple) -> int:
    """Index drawn from a (value, weight) table."""
    weights = np.array([w for _, w in table], dtype=float)
    return int(rng.choice(len(table), p=weights / weights.sum()))


def _value(rng: np.random.Generator, table: tuple):
    """A value drawn from a (value, weight) table."""
    return table[_pick(rng, table)][0]


def _other_colour(rng: np.random.Generator, table: tuple, avoid: int) -> int:
    """Palette index whose colour is clearly different from ``table[avoid]``."""
    ref = np.array(table[avoid][0], dtype=float)
    while True:
        index = _pick(rng, table)
        if np.linalg.norm(np.array(table[index][0], dtype=float) - ref) > MIN_COLOUR_DISTANCE:
            return index


def random_identity(rng: np.random.Generator) -> Identity:
    """Draw every attribute independently (stripe, logo and bag colours differ from the top)."""
    upper = _pick(rng, CLOTH)
    return Identity(
        upper=upper, lower=_pick(rng, CLOTH), shoes=_pick(rng, SHOES),
        hair=_pick(rng, HAIR), skin=_pick(rng, SKIN), long_hair=bool(rng.random() < 0.3),
        long_sleeves=bool(rng.random() < 0.55), lower_style=_value(rng, LOWER_STYLES),
        pattern=_value(rng, PATTERNS), pattern_colour=_other_colour(rng, CLOTH, upper),
        logo=_other_colour(rng, CLOTH, upper) if rng.random() < 0.3 else -1, bag=_value(rng, BAGS),
        bag_colour=_other_colour(rng, CLOTH, upper), bag_side=int(rng.choice([-1, 1])),
        width=float(rng.uniform(0.85, 1.2)), height=float(rng.uniform(0.9, 1.05)),
    )


def _other_value(rng: np.random.Generator, table: tuple, current: str) -> str:
    """A value from a (value, weight) table other than ``current``."""
    while True:
        value = _value(rng, table)
        if value != current:
            return value


def _change(ident: Identity, attr: str, rng: np.random.Generator) -> Identity:
    """Copy of ``ident`` with one attribute visibly changed."""
    if attr in ("upper", "lower", "bag_colour"):
        return replace(ident, **{attr: _other_colour(rng, CLOTH, getattr(ident, attr))})
    if attr == "shoes":
        return replace(ident, shoes=_other_colour(rng, SHOES, ident.shoes))
    if attr == "hair":
        return replace(ident, hair=_other_colour(rng, HAIR, ident.hair))
    if attr in ("long_hair", "long_sleeves"):
        return replace(ident, **{attr: not getattr(ident, attr)})
    if attr == "lower_style":
        return replace(ident, lower_style=_other_value(rng, LOWER_STYLES, ident.lower_style))
    if attr == "pattern":
        return replace(ident, pattern=_other_value(rng, PATTERNS, ident.pattern))
    if attr == "bag":
        return replace(ident, bag=_other_value(rng, BAGS, ident.bag))
    if attr == "logo":
        return replace(ident, logo=-1 if ident.logo >= 0 else _other_colour(rng, CLOTH, ident.upper))
    if attr == "shape":
        step = rng.uniform(0.15, 0.3) * rng.choice([-1, 1])
        return replace(ident, width=float(np.clip(ident.width + step, 0.8, 1.3)))
    raise ValueError(f"unknown attribute {attr!r}")


def _mutate(ident: Identity, rng: np.random.Generator, count: int) -> Identity:
    """Look-alike of ``ident``: one major attribute changed, plus ``count - 1`` others."""
    first = str(rng.choice(MAJOR))
    changed = _change(ident, first, rng)
    rest = [a for a in MAJOR + MINOR if a != first and (a != "bag_colour" or changed.bag != "none")]
    for attr in rng.choice(rest, size=count - 1, replace=False):
        changed = _change(changed, str(attr), rng)
    return changed


def make_identities(count: int, rng: np.random.Generator, taken: set | None = None) -> tuple[list[Identity], list[int]]:
    """``count`` distinct identities in look-alike groups of 1-3; returns (identities, group id of each)."""
    taken = set() if taken is None else taken
    identities: list[Identity] = []
    groups: list[int] = []
    group = 0
    while len(identities) < count:
        size = min(int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3])), count - len(identities))
        base = random_identity(rng)
        while base.signature() in taken:
            base = random_identity(rng)
        members = [base]
        taken.add(base.signature())
        while len(members) < size:
            sibling = _mutate(members[int(rng.integers(len(members)))], rng, int(rng.choice([1, 2], p=[0.6, 0.4])))
            if sibling.signature() not in taken:
                taken.add(sibling.signature())
                members.append(sibling)
        identities += members
        groups += [group] * size
        group += 1
    return identities, groups


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


def _part_colours(ident: Identity, rng: np.random.Generator) -> dict:
    """Palette colours of the identity with a small per-image colour jitter."""
    base = {
        "upper": CLOTH[ident.upper][0], "lower": CLOTH[ident.lower][0], "shoes": SHOES[ident.shoes][0],
        "hair": HAIR[ident.hair][0], "skin": SKIN[ident.skin][0], "pattern": CLOTH[ident.pattern_colour][0],
        "logo": CLOTH[max(ident.logo, 0)][0], "bag": CLOTH[ident.bag_colour][0],
    }
    light = float(np.exp(rng.normal(0, 0.06)))
    return {k: np.clip(np.array(v, dtype=np.float32) * light * np.exp(rng.normal(0, 0.04, 3)), 0, 255)
            for k, v in base.items()}


def _occlude(canvas: np.ndarray, rng: np.random.Generator, background: np.ndarray) -> None:
    """Cover part of the frame with an object in front of the person."""
    h, w = canvas.shape[:2]
    if rng.random() < 0.5:  # something of the scene's own colour
        colour = background.mean(axis=(0, 1)) * rng.uniform(0.6, 1.3)
    else:
        colour = np.array(CLOTH[_pick(rng, CLOTH)][0], dtype=np.float32)
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


def _apply_camera(scene: np.ndarray, cam: Camera, rng: np.random.Generator) -> np.ndarray:
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
        draw_person(canvas, ident, _part_colours(ident, rng), view, cx, feet, size, float(rng.uniform(0, 1)))
        if record.kind == "person" and rng.random() < occlusion_prob:
            _occlude(canvas, rng, background)
    return _apply_camera(canvas, cam, rng)


def _image_name(pid: int, cam: int, seq: int, frame: int, box: int) -> str:
    """Market-1501 file name; pid -1 (junk) is written without zero padding, as in Market."""
    prefix = f"{pid:04d}" if pid >= 0 else str(pid)
    return f"{prefix}_c{cam}s{seq}_{frame:06d}_{box:02d}.jpg"


def _assign_pids(rng: np.random.Generator, num_train: int, num_test: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint, sorted, non-contiguous pids (>= 1) for the train and test identities."""
    pool = np.arange(1, min(9999, max(1501, 3 * (num_train + num_test))) + 1)
    pids = rng.choice(pool, num_train + num_test, replace=False)
    return np.sort(pids[:num_train]), np.sort(pids[num_train:])


def _tracklet(rng: np.random.Generator, ident: Identity, pid: int, cam: int, count: int,
              num_query: int) -> list[Record]:
    """``count`` consecutive frames of one person in one camera; ``num_query`` > 0 marks a test id."""
    seq, box = int(rng.integers(1, 7)), int(rng.integers(1, 9))
    frames = int(rng.integers(0, 999_999 - 30 * count)) + np.cumsum(rng.integers(3, 30, count))
    query = set(rng.choice(count, num_query, replace=False).tolist()) if num_query else set()
    records = []
    for i, frame in enumerate(frames):
        folder = "bounding_box_train" if not num_query else ("query" if i in query else "bounding_box_test")
        records.append(Record(folder, _image_name(pid, cam, seq, int(frame), box), "person", ident, cam))
    return records


def _gallery_extras(rng: np.random.Generator, kind: str, count: int, num_cameras: int, used: set) -> list[Record]:
    """Distractor (pid 0, a stranger badly framed) or junk (pid -1, background) gallery images."""
    pid = 0 if kind == "distractor" else -1
    records = []
    for _ in range(count):
        cam, seq, box = int(rng.integers(1, num_cameras + 1)), int(rng.integers(1, 7)), int(rng.integers(1, 9))
        frame = int(rng.integers(0, 1_000_000))
        while _image_name(pid, cam, seq, frame, box) in used:
            frame = (frame + 1) % 1_000_000
        name = _image_name(pid, cam, seq, frame, box)
        used.add(name)
        ident = random_identity(rng) if kind == "distractor" else None
        records.append(Record("bounding_box_test", name, kind, ident, cam))
    return records


def plan_records(rng: np.random.Generator, *, num_train_ids: int, num_test_ids: int, num_cameras: int,
                 images_per_camera: int, cameras_per_id: int, num_distractors: int, num_junk: int,
                 queries_per_camera: int = 1) -> tuple[list[Record], dict[int, int]]:
    """Every image of the dataset (not yet rendered) and the look-alike group of each pid."""
    taken: set = set()
    train, train_groups = make_identities(num_train_ids, rng, taken)
    test, test_groups = make_identities(num_test_ids, rng, taken)
    train_pids, test_pids = _assign_pids(rng, num_train_ids, num_test_ids)
    group_of = {int(p): g for p, g in zip(train_pids, train_groups)}
    group_of.update({int(p): g + max(train_groups) + 1 for p, g in zip(test_pids, test_groups)})
    records: list[Record] = []
    for idents, pids, num_query in ((train, train_pids, 0), (test, test_pids, queries_per_camera)):
        for ident, pid in zip(idents, pids):
            for cam in np.sort(rng.choice(num_cameras, cameras_per_id, replace=False)) + 1:
                records += _tracklet(rng, ident, int(pid), int(cam), images_per_camera, num_query)
    used = {r.name for r in records}
    records += _gallery_extras(rng, "distractor", num_distractors, num_cameras, used)
    records += _gallery_extras(rng, "junk", num_junk, num_cameras, used)
    return records, group_of


def _check_args(num_train_ids: int, num_test_ids: int, num_cameras: int, images_per_camera: int,
                cameras_per_id: int, height: int, width: int, num_distractors: int, num_junk: int,
                queries_per_camera: int, seed: int) -> None:
    """Reject argument combinations that cannot give a valid Market-1501-layout dataset."""
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if num_train_ids < 1 or num_test_ids < 1:
        raise ValueError("num_train_ids and num_test_ids must be >= 1")
    if num_train_ids + num_test_ids > 9999:
        raise ValueError("at most 9999 identities fit 4-digit Market-1501 pids")
    if not 2 <= cameras_per_id <= num_cameras:
        raise ValueError(f"cameras_per_id must be in [2, num_cameras={num_cameras}], got {cameras_per_id}")
    if num_cameras > 9:
        raise ValueError("num_cameras must be <= 9 (single-digit c<cam> as in Market-1501)")
    if queries_per_camera < 1 or images_per_camera <= queries_per_camera:
        raise ValueError("need 1 <= queries_per_camera < images_per_camera so every query has gallery matches")
    if images_per_camera > 1000:
        raise ValueError("images_per_camera must be <= 1000")
    if height < 16 or width < 8:
        raise ValueError(f"image size must be at least 16 x 8, got {height} x {width}")
    if num_distractors < 0 or num_junk < 0:
        raise ValueError("num_distractors and num_junk must be >= 0")


def _zip_entry(name: str, is_dir: bool = False) -> zipfile.ZipInfo:
    """ZipInfo with fixed time, system and permissions so archives are byte-reproducible."""
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.create_system = 3
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = ((0o40755 << 16) | 0x10) if is_dir else (0o644 << 16)
    return info


def write_synthetic_zip(
    path: str | os.PathLike,
    *,
    num_train_ids: int = 80,
    num_test_ids: int = 80,
    num_cameras: int = 4,
    images_per_camera: int = 5,
    cameras_per_id: int = 3,
    height: int = 64,
    width: int = 32,
    num_distractors: int = 100,
    num_junk: int = 20,
    seed: int = 0,
    queries_per_camera: int = 1,
    camera_shift: float = 1.0,
    occlusion_prob: float = 0.15,
    jpeg_quality: int = 90,
    top_folder: str = "Synthetic-reID",
) -> dict:
    """Render the dataset and write it as a Market-1501-layout zip at ``path``; return counts.

    Each identity appears in ``cameras_per_id`` of the ``num_cameras`` cameras with
    ``images_per_camera`` images per camera. For test ids, ``queries_per_camera`` images per
    camera go to ``query/`` and the rest to ``bounding_box_test/``, which also holds
    ``num_distractors`` pid-0000 and ``num_junk`` pid -1 images. Same arguments, same bytes.
    """
    _check_args(num_train_ids, num_test_ids, num_cameras, images_per_camera, cameras_per_id,
                height, width, num_distractors, num_junk, queries_per_camera, seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    cameras = make_cameras(num_cameras, height, width, rng, camera_shift)
    records, _ = plan_records(rng, num_train_ids=num_train_ids, num_test_ids=num_test_ids,
                              num_cameras=num_cameras, images_per_camera=images_per_camera,
                              cameras_per_id=cameras_per_id, num_distractors=num_distractors,
                              num_junk=num_junk, queries_per_camera=queries_per_camera)
    path = os.fspath(path)
    out_dir = os.path.dirname(os.path.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    tmp_path = f"{path}.{os.getpid()}.tmp"
    order = sorted(range(len(records)), key=lambda i: (records[i].folder, records[i].name))
    try:
        with zipfile.ZipFile(tmp_path, "w") as zf:
            zf.writestr(_zip_entry(top_folder + "/", True), b"")
            for folder in ("bounding_box_test", "bounding_box_train", "query"):
                zf.writestr(_zip_entry(f"{top_folder}/{folder}/", True), b"")
            for i in order:
                record = records[i]
                image_rng = np.random.default_rng(np.random.SeedSequence([seed, 1, i]))
                pixels = render_image(record, cameras[record.camera - 1], height, width, image_rng, occlusion_prob)
                buffer = io.BytesIO()
                Image.fromarray(pixels).save(buffer, format="JPEG", quality=jpeg_quality)
                zf.writestr(_zip_entry(f"{top_folder}/{record.folder}/{record.name}"), buffer.getvalue())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    return _summary(records, top_folder, num_train_ids, num_test_ids, num_cameras, height, width, seed)


def _summary(records: list[Record], top_folder: str, num_train_ids: int, num_test_ids: int,
             num_cameras: int, height: int, width: int, seed: int) -> dict:
    """Counts describing a written dataset (``gallery_images`` includes distractors and junk)."""
    def count(folder: str | None = None, kind: str | None = None) -> int:
        return sum((folder is None or r.folder == folder) and (kind is None or r.kind == kind) for r in records)

    return {
        "top_folder": top_folder,
        "num_train_ids": num_train_ids,
        "num_test_ids": num_test_ids,
        "num_cameras": num_cameras,
        "train_images": count("bounding_box_train"),
        "query_images": count("query"),
        "gallery_images": count("bounding_box_test"),
        "gallery_person_images": count("bounding_box_test", "person"),
        "distractor_images": count(kind="distractor"),
        "junk_images": count(kind="junk"),
        "total_images": len(records),
        "height": height,
        "width": width,
        "seed": seed,
    }
