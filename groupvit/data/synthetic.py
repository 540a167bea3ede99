"""Procedural scenes for a small end-to-end run: image, label mask and caption.

Each of the 8 categories has its own hue, its own texture and its own shape, so
that a patch of an object carries a *local* cue for its class: a tiny GroupViT
trained for an hour on CPU learns nothing from shape alone (measured: mIoU
stayed at the all-background level) and groups pixels far more easily when
colour and texture also tell the classes apart. Backgrounds are muted,
low-saturation textures that look like no category. Captions are varied
sentences that name the objects among other nouns and verbs ("photo", "wall",
"sitting"), so the noun-prompt extraction has real work to do.

Everything here is pure numpy / PIL and deterministic given the ``rng``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image

__all__ = [
    "CATEGORIES",
    "assemble_caption",
    "CLASSES",
    "CaptionPhrase",
    "Category",
    "CATEGORY_SPECS",
    "GroundedScene",
    "render_grounded_scene",
    "render_scene",
]


@dataclass(frozen=True)
class Category:
    name: str  # class name: a single common English noun, tagged NN by NLTK
    plural: str  # used when a scene holds two of them ("two apples")
    color: tuple[int, int, int]  # base RGB; hues are far apart between categories
    aspect: float  # width / height of the object's box
    adjectives: tuple[str, ...]  # words a caption may put before the name


CATEGORY_SPECS: tuple[Category, ...] = (
    Category("apple", "apples", (205, 30, 35), 1.0, ("red", "shiny", "round", "fresh")),
    Category("house", "houses", (215, 125, 45), 0.9, ("brick", "orange", "little", "old")),
    Category("star", "stars", (245, 215, 30), 1.0, ("yellow", "golden", "bright")),
    Category("tree", "trees", (35, 150, 45), 0.8, ("green", "leafy", "tall")),
    Category("fish", "fish", (25, 195, 205), 1.5, ("cyan", "spotted", "little")),
    Category("car", "cars", (30, 70, 215), 1.5, ("blue", "fast", "toy")),
    Category("ball", "balls", (145, 45, 210), 1.0, ("purple", "striped", "bouncy")),
    Category("flower", "flowers", (235, 70, 170), 1.0, ("pink", "pretty", "blooming")),
)

#: Category names, label ``i + 1`` in the masks.
CATEGORIES: tuple[str, ...] = tuple(c.name for c in CATEGORY_SPECS)
#: Val class list: label 0 is background.
CLASSES: tuple[str, ...] = ("background", *CATEGORIES)

Array = np.ndarray

# --------------------------------------------------------------------------- textures


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> Array:
    """Value noise in [0, 1], [h, w]: a coarse random grid resized bilinearly."""
    gh, gw = max(2, h // cell + 2), max(2, w // cell + 2)
    grid = Image.fromarray((rng.random((gh, gw)) * 255).astype(np.uint8))
    return np.asarray(grid.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0


def _shade(color: Array, factor: Array) -> Array:
    """Scale an RGB colour [3] by a per-pixel factor [h, w] -> [h, w, 3]."""
    return color[None, None, :] * factor[..., None]


# --------------------------------------------------------------------------- shapes
# Each painter gets local coordinates u (right), v (down) in [-1, 1] over the
# object's box and returns (mask [h, w] bool, rgb [h, w, 3] float).

Painter = Callable[[Array, Array, Array, np.random.Generator], tuple[Array, Array]]


def _apple(u: Array, v: Array, c: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    r = np.hypot(u, (v - 0.1) * 1.05)
    body = (r < 0.88) & ~((np.abs(u) < 0.18) & (v < -0.62))  # dent at the top
    stem = (np.abs(u - 0.05) < 0.07) & (v >= -1.0) & (v < -0.55)
    # radial shading with a highlight to the upper left
    light = 1.15 - 0.45 * np.hypot(u + 0.35, v + 0.25)
    rgb = _shade(c, np.clip(light, 0.55, 1.25))
    rgb[stem] = (90, 60, 25)
    return body | stem, rgb


def _house(u: Array, v: Array, c: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    walls = (np.abs(u) < 0.78) & (v > -0.15) & (v < 1.0)
    roof = (v <= -0.15) & (v > -1.0) & (np.abs(u) < 0.95 * (v + 1.0) / 0.85)
    # brick texture: dark mortar lines every 0.2 in v, offset joints per row
    row = np.floor((v + 1.0) / 0.2)
    mortar = ((v + 1.0) % 0.2 < 0.05) | (((u + 1.0 + 0.2 * (row % 2)) % 0.4) < 0.06)
    rgb = _shade(c, np.where(mortar, 0.62, 1.0))
    rgb[roof] = c * 0.6  # a darker shade of the same hue: apple red stays apple-only
    door = (np.abs(u) < 0.16) & (v > 0.5)
    rgb[door & walls] = c * 0.35
    return walls | roof, rgb


def _star(u: Array, v: Array, c: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    r = np.hypot(u, v)
    theta = np.arctan2(u, -v)  # 0 at the top point
    tri = np.abs(((theta * 5 / (2 * np.pi)) % 1.0) - 0.5) * 2  # 1 at the points, 0 between
    mask = r < 0.42 + 0.58 * tri**1.4
    # bright centre fading to the tips, plus facets on either side of each ray
    facet = np.where(((theta * 10 / (2 * np.pi)) % 1.0) < 0.5, 1.08, 0.86)
    rgb = _shade(c, np.clip((1.15 - 0.3 * r) * facet, 0.6, 1.25))
    return mask, rgb


def _tree(u: Array, v: Array, c: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    crown = (np.hypot(u * 1.05, (v + 0.25) * 1.2) < 0.88) | (
        np.hypot(np.abs(u) - 0.38, (v + 0.05) * 1.3) < 0.5
    )
    trunk = (np.abs(u) < 0.15) & (v > 0.3) & (v < 1.0)
    # leaf blotches: light / dark patches at a fine scale
    h, w = u.shape
    leaves = smooth_noise(rng, h, w, cell=max(2, min(h, w) // 6))
    rgb = _shade(c, 0.65 + 0.6 * leaves)
    rgb[trunk & ~crown] = c * np.array([1.6, 0.45, 0.5])  # dark olive trunk
    return crown | trunk, rgb


def _fish(u: Array, v: Array, c: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    body = ((u + 0.2) / 0.72) ** 2 + (v / 0.55) ** 2 < 1.0
    tail = (u > 0.35) & (u < 1.0) & (np.abs(v) < (u - 0.35) * 1.0 + 0.05)
    # scales: a dot lattice over the body
    dots = (np.sin(u * 14) * np.sin(v * 14 + 1.0)) > 0.45
    rgb = _shade(c, np.where(dots, 0.7, 1.05))
    rgb[tail] = c * 0.8
    eye = np.hypot(u + 0.62, v + 0.12) < 0.09
    rgb[eye] = (15, 15, 15)
    return body | tail, rgb


def _car(u: Array, v: Array, c: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    body = (np.abs(u) < 0.98) & (v > -0.15) & (v < 0.55)
    cabin = (v > -0.75) & (v <= -0.15) & (u > -0.55 - 0.3 * (v + 0.75)) & (u < 0.35 + 0.35 * (v + 0.75))
    wheels = (np.hypot(u + 0.55, v - 0.6) < 0.3) | (np.hypot(u - 0.55, v - 0.6) < 0.3)
    rgb = _shade(c, np.where(np.abs(v - 0.2) < 0.05, 0.7, 1.0))  # a side stripe
    window = cabin & (v > -0.62) & (v < -0.22)
    rgb[window] = (170, 205, 240)
    rgb[wheels] = (25, 25, 30)
    return body | cabin | wheels, rgb


def _ball(u: Array, v: Array, c: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    r = np.hypot(u, v)
    mask = r < 0.95
    # curved bands in two shades: a beach ball
    bands = np.sin(np.pi * 2.2 * (u + 0.3 * v * v)) > 0
    rgb = _shade(c, np.where(bands, 1.0, 0.55)) + np.where(bands, 0, 60)[..., None]
    rgb = rgb * (1.1 - 0.25 * r)[..., None]
    return mask, rgb


def _flower(u: Array, v: Array, c: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    r = np.hypot(u, v)
    theta = np.arctan2(v, u)
    petals = r < 0.5 + 0.48 * np.abs(np.cos(2.5 * theta))
    centre = r < 0.28
    rgb = _shade(c, 0.8 + 0.35 * np.clip(r, 0, 1))  # petals lighter towards their tips
    rgb[centre] = c * np.array([0.6, 0.3, 0.55])  # dark magenta, not star yellow
    return petals | centre, rgb


_PAINTERS: dict[str, Painter] = {
    "apple": _apple,
    "house": _house,
    "star": _star,
    "tree": _tree,
    "fish": _fish,
    "car": _car,
    "ball": _ball,
    "flower": _flower,
}

# --------------------------------------------------------------------------- backgrounds

# texture kind -> nouns a caption may use for it
BACKGROUND_NOUNS: dict[str, tuple[str, ...]] = {
    "plain": ("wall", "background", "sky"),
    "noise": ("ground", "carpet", "sand"),
    "stripes": ("table", "curtain", "fence"),
    "checker": ("floor", "tiles", "blanket"),
    "grain": ("paper", "road", "stone"),
}


def background_texture(rng: np.random.Generator, size: int) -> tuple[Array, str]:
    """A muted texture [size, size, 3] float in 0..255 and its kind."""
    kind = list(BACKGROUND_NOUNS)[rng.integers(len(BACKGROUND_NOUNS))]
    grey = rng.uniform(80, 200)
    tint = rng.uniform(-1, 1, 3) * 14  # low saturation: never reaches an object's hue
    base = np.clip(grey + tint, 0, 255).astype(np.float32)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    gx, gy = rng.uniform(-0.25, 0.25, 2)
    light = 1.0 + gx * (x - 0.5) + gy * (y - 0.5)
    if kind == "noise":
        light = light * (0.8 + 0.4 * smooth_noise(rng, size, size, cell=max(2, size // 10)))
    elif kind == "stripes":
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.08, 0.2)
        t = (x * np.cos(angle) + y * np.sin(angle)) / period
        light = light * (1.0 + 0.12 * np.sign(np.sin(2 * np.pi * t)))
    elif kind == "checker":
        cell = rng.uniform(0.1, 0.25)
        light = light * (1.0 + 0.1 * (((x // cell) + (y // cell)) % 2 * 2 - 1))
    elif kind == "grain":
        light = light * (0.88 + 0.24 * rng.random((size, size)).astype(np.float32))
    return base[None, None, :] * light[..., None], kind


# --------------------------------------------------------------------------- captions

_SENTENCES: tuple[str, ...] = (
    "a photo of {objs}.",
    "{objs} on a {bg}.",
    "there {be} {objs} on the {bg}.",
    "a drawing of {objs} in front of a {bg}.",
    "{objs} sitting on a {bg}.",
    "i can see {objs} in this picture.",
    "this image shows {objs}.",
    "cartoon of {objs} against a plain {bg}.",
    "a simple picture with {objs} and nothing else.",
    "look at {objs}!",
    "my kid drew {objs} on the {bg}.",
    "close-up of {objs}.",
    "someone painted {objs} on a {bg}.",
    "{objs}",
    "here we have {objs} lying on the {bg}.",
    "{objs} seen from above, with a {bg} behind.",
)


def _phrase(rng: np.random.Generator, spec: Category, count: int) -> str:
    """'a red apple', 'the car', 'two stars'."""
    adjective = spec.adjectives[rng.integers(len(spec.adjectives))] + " " if rng.random() < 0.5 else ""
    if count > 1:
        return f"two {adjective}{spec.plural}"
    if rng.random() < 0.2:
        return f"the {adjective}{spec.name}"
    article = "an" if (adjective or spec.name)[0] in "aeiou" else "a"
    return f"{article} {adjective}{spec.name}"


class CaptionPhrase(NamedTuple):
    """Where a caption names one category: ``caption[span[0]:span[1]]`` is e.g. "two red apples"."""

    span: tuple[int, int]  # character offsets [start, end) into the caption
    label: int  # the category's label in the masks (``CATEGORIES.index(name) + 1``)


def make_caption(rng: np.random.Generator, objects: list[Category], background: str) -> str:
    """A sentence naming every object (in random order) and maybe the background."""
    return make_grounded_caption(rng, objects, background)[0]


def make_grounded_caption(
    rng: np.random.Generator, objects: list[Category], background: str
) -> tuple[str, list[CaptionPhrase]]:
    """:func:`make_caption` (the same random draws, the same sentence) and the span of each phrase."""
    counts: dict[str, int] = {}
    for spec in objects:
        counts[spec.name] = counts.get(spec.name, 0) + 1
    specs = {spec.name: spec for spec in objects}
    names = list(counts)
    rng.shuffle(names)
    phrases = [_phrase(rng, specs[n], counts[n]) for n in names]
    labels = [CATEGORIES.index(name) + 1 for name in names]
    return assemble_caption(rng, phrases, labels, len(objects), background)


def assemble_caption(
    rng: np.random.Generator, phrases: list[str], labels: list[int], num_objects: int, background: str
) -> tuple[str, list[CaptionPhrase]]:
    """Put the object phrases (one per category, in caption order) into a random sentence.

    Returns the caption and each phrase's span with its label; shared by every scene kind, so
    the shape-only scenes (:mod:`groupvit.data.synthetic_shapes`) have the same sentence forms.
    """
    objs = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    sentence = _SENTENCES[rng.integers(len(_SENTENCES))]
    be = "are" if num_objects > 1 else "is"
    text = sentence.format(objs=objs, bg=background, be=be)
    start = len(sentence.split("{objs}")[0].format(bg=background, be=be))
    spans = []
    for label, phrase in zip(labels, phrases):
        offset = start + objs.index(phrase)  # phrases name distinct categories, so each is found once
        spans.append(CaptionPhrase((offset, offset + len(phrase)), label))
        start, objs = offset + len(phrase), objs[objs.index(phrase) + len(phrase) :]
    return (text[0].upper() + text[1:] if rng.random() < 0.5 else text), spans


# --------------------------------------------------------------------------- scene


@dataclass
class _Placed:
    category: int  # index into CATEGORY_SPECS
    cx: float
    cy: float
    w: float
    h: float


def _place_objects(rng: np.random.Generator, size: int) -> list[_Placed]:
    """1-3 objects, 24-55% of the side (smaller when there are more), with limited overlap."""
    n = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    lo, hi = {1: (0.35, 0.55), 2: (0.28, 0.45), 3: (0.24, 0.38)}[n]
    cats = list(rng.choice(len(CATEGORY_SPECS), size=n, replace=False))
    if n >= 2 and rng.random() < 0.15:  # sometimes two of the same kind
        cats[1] = cats[0]
    placed: list[_Placed] = []
    for cat in cats:
        aspect = CATEGORY_SPECS[cat].aspect * rng.uniform(0.9, 1.1)
        side = rng.uniform(lo, hi) * size
        w, h = side * np.sqrt(aspect), side / np.sqrt(aspect)
        w, h = min(w, 0.9 * size), min(h, 0.9 * size)
        best, best_gap = None, -np.inf
        for _ in range(20):  # keep the candidate farthest from the others
            cx = rng.uniform(w / 2, size - w / 2)
            cy = rng.uniform(h / 2, size - h / 2)
            gap = min(
                (max(abs(cx - p.cx) - (w + p.w) / 2, abs(cy - p.cy) - (h + p.h) / 2) for p in placed),
                default=np.inf,
            )
            if gap > best_gap:
                best, best_gap = (cx, cy), gap
            if gap > 0:
                break
        placed.append(_Placed(int(cat), best[0], best[1], w, h))
    return placed


def _paint(canvas: Array, instances: Array, instance_id: int, obj: _Placed, rng: np.random.Generator) -> None:
    """Draw one object into ``canvas`` [S, S, 3] and ``instance_id`` into ``instances`` [S, S]."""
    spec = CATEGORY_SPECS[obj.category]
    size = canvas.shape[0]
    # the rotated box fits inside a square of side hypot(w, h)
    half = 0.5 * np.hypot(obj.w, obj.h)
    x0, x1 = max(0, int(obj.cx - half)), min(size, int(np.ceil(obj.cx + half)) + 1)
    y0, y1 = max(0, int(obj.cy - half)), min(size, int(np.ceil(obj.cy + half)) + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
    angle = rng.uniform(-0.35, 0.35)
    cos, sin = np.cos(angle), np.sin(angle)
    dx, dy = xx - obj.cx, yy - obj.cy
    u = (cos * dx + sin * dy) / (obj.w / 2)
    v = (-sin * dx + cos * dy) / (obj.h / 2)
    if rng.random() < 0.5:
        u = -u
    # per-instance colour jitter, small enough that the hue stays the class cue
    color = np.clip(
        np.array(spec.color, np.float32) * rng.uniform(0.85, 1.12) + rng.uniform(-12, 12, 3), 0, 255
    )
    inside, rgb = _PAINTERS[spec.name](u, v, color, rng)
    inside &= (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    canvas[y0:y1, x0:x1][inside] = rgb[inside]
    instances[y0:y1, x0:x1][inside] = instance_id


def render_scene(rng: np.random.Generator, size: int = 64) -> tuple[Image.Image, np.ndarray, str]:
    """Draw one scene.

    Args:
        rng: source of all randomness (``np.random.default_rng(seed)``).
        size: image side in pixels.

    Returns:
        (RGB PIL image size x size, label mask uint8 [size, size] with 0 = background
        and ``i + 1`` = ``CATEGORIES[i]``, caption str).
    """
    scene = render_grounded_scene(rng, size)
    return scene.image, scene.mask, scene.caption


class GroundedScene(NamedTuple):
    """One scene with the caption's phrase spans (grounding ground truth)."""

    image: Image.Image  # RGB, size x size
    mask: np.ndarray  # uint8 [size, size]: 0 = background, i + 1 = CATEGORIES[i]
    caption: str
    phrases: list[CaptionPhrase]  # one per category the caption names, in caption order


def render_grounded_scene(rng: np.random.Generator, size: int = 64) -> GroundedScene:
    """:func:`render_scene` (the same draws, the same scene) with the caption's phrase spans."""
    canvas, bg_kind = background_texture(rng, size)
    instances = np.zeros((size, size), np.uint8)  # 0 = background, i + 1 = placed[i]
    placed = _place_objects(rng, size)
    for i, obj in enumerate(placed):
        _paint(canvas, instances, i + 1, obj, rng)
    mask = np.array([0] + [o.category + 1 for o in placed], np.uint8)[instances]
    canvas = canvas + rng.normal(0, 3.0, canvas.shape)  # sensor noise, so nothing is perfectly flat
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")
    # an object fully hidden by a later one must not be named in the caption
    present = np.bincount(instances.ravel(), minlength=len(placed) + 1)[1:] > 0
    visible = [CATEGORY_SPECS[o.category] for o, seen in zip(placed, present) if seen]
    bg_noun = BACKGROUND_NOUNS[bg_kind][rng.integers(3)]
    caption, phrases = make_grounded_caption(rng, visible, bg_noun)
    return GroundedScene(image, mask, caption, phrases)
