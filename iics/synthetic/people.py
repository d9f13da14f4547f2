"""Synthetic people: appearance attributes drawn from weighted palettes, in look-alike groups."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

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


def pick(rng: np.random.Generator, table: tuple) -> int:
    """Index drawn from a (value, weight) table."""
    weights = np.array([w for _, w in table], dtype=float)
    return int(rng.choice(len(table), p=weights / weights.sum()))


def _value(rng: np.random.Generator, table: tuple):
    """A value drawn from a (value, weight) table."""
    return table[pick(rng, table)][0]


def _other_colour(rng: np.random.Generator, table: tuple, avoid: int) -> int:
    """Palette index whose colour is clearly different from ``table[avoid]``."""
    ref = np.array(table[avoid][0], dtype=float)
    while True:
        index = pick(rng, table)
        if np.linalg.norm(np.array(table[index][0], dtype=float) - ref) > MIN_COLOUR_DISTANCE:
            return index


def random_identity(rng: np.random.Generator) -> Identity:
    """Draw every attribute independently (stripe, logo and bag colours differ from the top)."""
    upper = pick(rng, CLOTH)
    return Identity(
        upper=upper, lower=pick(rng, CLOTH), shoes=pick(rng, SHOES),
        hair=pick(rng, HAIR), skin=pick(rng, SKIN), long_hair=bool(rng.random() < 0.3),
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
