"""Colour palettes: one for classes (PASCAL VOC order, no greys), one for groups (bright, distinct)."""

import colorsys

import numpy as np

# Colour of group boundaries; never produced by ``group_palette`` (saturation >= 0.45).
BOUNDARY_COLOR: tuple[int, int, int] = (255, 255, 255)


# A class colour is kept only when it is this far from grey (max - min channel) and from the
# background's black (Euclidean, RGB): the VOC map's greys (128, 128, 128), (64, 64, 64), ... and
# near-blacks would read as background or as "no colour" in the overlays.
MIN_CHROMA = 64
MIN_BACKGROUND_DISTANCE = 100.0


def voc_color_map(num: int) -> np.ndarray:
    """The PASCAL VOC colour map of indices ``0 .. num - 1``: ``[num, 3]`` int64. Bits of the index are
    spread over the high bits of R, G and B, so every index below 2**24 gets its own colour."""
    index = np.arange(num, dtype=np.int64)
    colors = np.zeros((num, 3), dtype=np.int64)
    for shift in range(8):
        for channel in range(3):
            bit = (index >> (3 * shift + channel)) & 1
            colors[:, channel] |= bit << (7 - shift)
    return colors


def class_palette(num_classes: int) -> np.ndarray:
    """Class colours ``[num_classes, 3]`` uint8: index 0 black (background), then the VOC colour
    map's colours in order, without its greys and near-blacks (see :data:`MIN_CHROMA`): the first
    seven are VOC's, VOC's grey "car" and later greys are skipped. All distinct."""
    if num_classes <= 0:
        return np.zeros((0, 3), dtype=np.uint8)
    count = 2 * num_classes + 64
    while True:
        colors = voc_color_map(count)[1:]
        chroma = colors.max(axis=1) - colors.min(axis=1)
        keep = colors[(chroma >= MIN_CHROMA) & (np.linalg.norm(colors, axis=1) >= MIN_BACKGROUND_DISTANCE)]
        if len(keep) >= num_classes - 1:
            return np.concatenate([np.zeros((1, 3), np.int64), keep[: num_classes - 1]]).astype(np.uint8)
        count *= 2


def group_palette(num_groups: int) -> np.ndarray:
    """``[num_groups, 3]`` uint8 distinct, saturated colours for group ids.

    Hues step by the golden ratio so neighbouring ids differ strongly; saturation and
    value cycle through a few levels to stay distinct past a few dozen groups.
    """
    golden = 0.6180339887498949
    levels = [(0.75, 0.95), (0.95, 0.7), (0.45, 1.0), (0.9, 0.5)]
    colors: list[tuple[int, int, int]] = []
    seen: set[tuple[int, int, int]] = set()
    i = 0
    while len(colors) < num_groups:
        sat, val = levels[(i // 16) % len(levels)]
        r, g, b = colorsys.hsv_to_rgb((i * golden) % 1.0, sat, val)
        color = (round(r * 255), round(g * 255), round(b * 255))
        i += 1
        if color not in seen:
            seen.add(color)
            colors.append(color)
    return np.asarray(colors, dtype=np.uint8).reshape(num_groups, 3)
