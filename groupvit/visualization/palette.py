"""Colour palettes: one for classes (PASCAL VOC order), one for groups (bright, distinct)."""

import colorsys

import numpy as np

# Colour of group boundaries; never produced by ``group_palette`` (saturation >= 0.45).
BOUNDARY_COLOR: tuple[int, int, int] = (255, 255, 255)


def class_palette(num_classes: int) -> np.ndarray:
    """The PASCAL VOC colour map: ``[num_classes, 3]`` uint8, index 0 black (background).

    Bits of the class index are spread over the high bits of R, G and B, so every
    index below 2**24 gets its own colour and the first 21 match VOC's label PNGs.
    """
    index = np.arange(num_classes, dtype=np.int64)
    colors = np.zeros((num_classes, 3), dtype=np.int64)
    for shift in range(8):
        for channel in range(3):
            bit = (index >> (3 * shift + channel)) & 1
            colors[:, channel] |= bit << (7 - shift)
    return colors.astype(np.uint8)


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
