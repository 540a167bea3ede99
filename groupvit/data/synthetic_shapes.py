"""Shape-only procedural scenes: the category is given by the object's outline and nothing else.

The colour scenes (:mod:`groupvit.data.synthetic`) give each category its own hue and texture, so
a model can name a region by its colour. Here fill colour, fill texture, size, rotation, mirror
and background are drawn independently of the category; two objects of one scene may share a
colour; captions name the colours and textures as adjectives ("a striped red heart") among the
background nouns, so the noun extraction still has to find the shape names.

The 8 outlines are chosen to differ at the coarse scale of a 16-px patch grid (a filled triangle,
a thin ring, a concave crescent, a plus, ...), and each is defined inside the unit disc so that
any rotation keeps it inside its box.

Everything here is pure numpy / PIL and deterministic given the ``rng``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from groupvit.data.synthetic import (
    BACKGROUND_NOUNS,
    GroundedScene,
    assemble_caption,
    background_texture,
    smooth_noise,
)

__all__ = ["SHAPE_CATEGORIES", "SHAPE_CLASSES", "COLOURS", "render_shape_scene"]

Array = np.ndarray
Outline = Callable[[Array, Array], Array]  # local coordinates u, v in [-1, 1] -> inside mask


def _triangle(u: Array, v: Array) -> Array:
    # equilateral, inscribed in the circle of radius 0.95, point up
    r = 0.95
    return (v < r * 0.5) & (np.sqrt(3) * u - v < r) & (-np.sqrt(3) * u - v < r)


def _star(u: Array, v: Array) -> Array:
    theta = np.arctan2(u, -v)
    tri = np.abs(((theta * 5 / (2 * np.pi)) % 1.0) - 0.5) * 2  # 1 at the points, 0 between
    return np.hypot(u, v) < 0.38 + 0.6 * tri**1.5


def _heart(u: Array, v: Array) -> Array:
    x, y = u * 1.25, -(v * 1.25 - 0.2)  # the classic sextic, scaled into the unit disc
    return (x * x + y * y - 1) ** 3 - x * x * y**3 < 0


def _ring(u: Array, v: Array) -> Array:
    r = np.hypot(u, v)
    return (r < 0.95) & (r > 0.55)


def _moon(u: Array, v: Array) -> Array:
    return (np.hypot(u, v) < 0.95) & (np.hypot(u - 0.45, v + 0.15) > 0.72)


def _cross(u: Array, v: Array) -> Array:
    arm = 0.3
    return ((np.abs(u) < arm) & (np.abs(v) < 0.92)) | ((np.abs(v) < arm) & (np.abs(u) < 0.92))


def _diamond(u: Array, v: Array) -> Array:
    return np.abs(u) / 0.6 + np.abs(v) / 0.97 < 1.0


def _arrow(u: Array, v: Array) -> Array:
    shaft = (np.abs(v) < 0.2) & (u > -0.95) & (u < 0.15)
    head = (u >= 0.0) & (u < 0.95) & (np.abs(v) < (0.95 - u) * 0.75)
    return shaft | head


@dataclass(frozen=True)
class ShapeCategory:
    name: str  # class name: a common English noun, tagged NN by NLTK
    plural: str  # "two hearts"
    outline: Outline


SHAPE_CATEGORIES: tuple[ShapeCategory, ...] = (
    ShapeCategory("triangle", "triangles", _triangle),
    ShapeCategory("star", "stars", _star),
    ShapeCategory("heart", "hearts", _heart),
    ShapeCategory("ring", "rings", _ring),
    ShapeCategory("moon", "moons", _moon),
    ShapeCategory("cross", "crosses", _cross),
    ShapeCategory("diamond", "diamonds", _diamond),
    ShapeCategory("arrow", "arrows", _arrow),
)
#: Val class list: label 0 is background, ``i + 1`` is ``SHAPE_CATEGORIES[i]``.
SHAPE_CLASSES: tuple[str, ...] = ("background", *(c.name for c in SHAPE_CATEGORIES))

#: Fill colours shared by every shape (name -> RGB); saturated or extreme, so that they stand out
#: of the muted backgrounds.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (235, 135, 30),
    "yellow": (240, 215, 40),
    "green": (40, 165, 55),
    "cyan": (30, 195, 205),
    "blue": (35, 75, 215),
    "purple": (140, 45, 205),
    "pink": (235, 85, 175),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
}
# fill texture -> the adjective a caption may use for it
_TEXTURES: dict[str, str] = {"plain": "plain", "stripes": "striped", "dots": "dotted", "spots": "spotted"}


@dataclass
class _Shape:
    category: int  # index into SHAPE_CATEGORIES
    cx: float
    cy: float
    side: float  # box side in pixels
    colour: str
    texture: str


def _fill(rng: np.random.Generator, u: Array, v: Array, colour: Array, texture: str) -> Array:
    """Fill colour [h, w, 3] for the texture, in the object's rotated frame."""
    r = np.hypot(u, v)
    light = 1.1 - 0.25 * r  # soft radial shading, the same for every shape
    if texture == "stripes":
        angle = rng.uniform(0, np.pi)
        t = (u * np.cos(angle) + v * np.sin(angle)) * rng.uniform(2.0, 3.5)
        light = light * np.where(np.sin(np.pi * t) > 0, 1.0, 0.6)
    elif texture == "dots":
        freq = rng.uniform(6, 10)
        light = light * np.where(np.sin(u * freq) * np.sin(v * freq + 1.0) > 0.45, 0.6, 1.0)
    elif texture == "spots":
        h, w = u.shape
        light = light * (0.6 + 0.6 * smooth_noise(rng, h, w, cell=max(2, min(h, w) // 4)))
    rgb = colour[None, None, :] * light[..., None]
    if colour.max() < 60:  # black: shading alone would not show the texture
        rgb = rgb + (1.0 - light[..., None]) * 120
    return rgb


def _place(rng: np.random.Generator, size: int) -> list[_Shape]:
    """1-3 shapes, their box 28-65% of the side (smaller when there are more), limited overlap."""
    n = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    lo, hi = {1: (0.4, 0.65), 2: (0.32, 0.5), 3: (0.28, 0.42)}[n]
    cats = list(rng.choice(len(SHAPE_CATEGORIES), size=n, replace=False))
    if n >= 2 and rng.random() < 0.15:  # sometimes two of the same kind
        cats[1] = cats[0]
    names = list(COLOURS)
    placed: list[_Shape] = []
    for cat in cats:
        side = rng.uniform(lo, hi) * size
        best, best_gap = None, -np.inf
        for _ in range(20):  # keep the candidate farthest from the others
            cx, cy = rng.uniform(side / 2, size - side / 2, 2)
            gap = min(
                (max(abs(cx - p.cx), abs(cy - p.cy)) - (side + p.side) / 2 for p in placed), default=np.inf
            )
            if gap > best_gap:
                best, best_gap = (cx, cy), gap
            if gap > 0:
                break
        colour = names[rng.integers(len(names))]  # with replacement: two shapes may share a colour
        texture = list(_TEXTURES)[rng.integers(len(_TEXTURES))]
        placed.append(_Shape(int(cat), best[0], best[1], side, colour, texture))
    return placed


def _paint(canvas: Array, instances: Array, instance_id: int, obj: _Shape, rng: np.random.Generator) -> None:
    """Draw one shape into ``canvas`` [S, S, 3] and ``instance_id`` into ``instances`` [S, S]."""
    size = canvas.shape[0]
    half = obj.side / 2
    x0, x1 = max(0, int(obj.cx - half)), min(size, int(np.ceil(obj.cx + half)) + 1)
    y0, y1 = max(0, int(obj.cy - half)), min(size, int(np.ceil(obj.cy + half)) + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
    angle = rng.uniform(0, 2 * np.pi)  # any rotation: the outline, not its pose, is the class
    cos, sin = np.cos(angle), np.sin(angle)
    dx, dy = (xx - obj.cx) / half, (yy - obj.cy) / half
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    if rng.random() < 0.5:
        u = -u
    colour = np.clip(
        np.array(COLOURS[obj.colour], np.float32) * rng.uniform(0.88, 1.08) + rng.uniform(-12, 12, 3), 0, 255
    )
    inside = SHAPE_CATEGORIES[obj.category].outline(u, v)
    rgb = _fill(rng, u, v, colour, obj.texture)
    canvas[y0:y1, x0:x1][inside] = rgb[inside]
    instances[y0:y1, x0:x1][inside] = instance_id


def _phrase(rng: np.random.Generator, shapes: list[_Shape]) -> str:
    """'a red heart', 'the striped ring', 'two blue stars' (shapes: the visible ones of a category)."""
    spec = SHAPE_CATEGORIES[shapes[0].category]
    adjective = ""
    if rng.random() < 0.6:
        # an adjective true of every shape the phrase names: its colour or its texture
        colours, textures = {s.colour for s in shapes}, {s.texture for s in shapes}
        options = ([shapes[0].colour] if len(colours) == 1 else []) + (
            [_TEXTURES[shapes[0].texture]] if len(textures) == 1 else []
        )
        if options:
            adjective = options[rng.integers(len(options))] + " "
    if len(shapes) > 1:
        return f"two {adjective}{spec.plural}"
    if rng.random() < 0.2:
        return f"the {adjective}{spec.name}"
    article = "an" if (adjective or spec.name)[0] in "aeiou" else "a"
    return f"{article} {adjective}{spec.name}"


def render_shape_scene(rng: np.random.Generator, size: int = 64) -> GroundedScene:
    """Draw one shape-only scene with its caption and phrase spans.

    Returns:
        :class:`~groupvit.data.synthetic.GroundedScene`: RGB image size x size, label mask uint8
        [size, size] (0 = background, ``i + 1`` = ``SHAPE_CATEGORIES[i]``), caption, phrases.
    """
    canvas, bg_kind = background_texture(rng, size)
    instances = np.zeros((size, size), np.uint8)
    placed = _place(rng, size)
    for i, obj in enumerate(placed):
        _paint(canvas, instances, i + 1, obj, rng)
    mask = np.array([0] + [o.category + 1 for o in placed], np.uint8)[instances]
    canvas = canvas + rng.normal(0, 3.0, canvas.shape)
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")
    present = np.bincount(instances.ravel(), minlength=len(placed) + 1)[1:] > 0
    by_category: dict[int, list[_Shape]] = {}
    for obj, seen in zip(placed, present):
        if seen:  # an object fully hidden by a later one is not named
            by_category.setdefault(obj.category, []).append(obj)
    order = list(by_category)
    rng.shuffle(order)
    phrases = [_phrase(rng, by_category[c]) for c in order]
    bg_noun = BACKGROUND_NOUNS[bg_kind][rng.integers(3)]
    caption, spans = assemble_caption(rng, phrases, [c + 1 for c in order], sum(present.tolist()), bg_noun)
    return GroundedScene(image, mask, caption, spans)
