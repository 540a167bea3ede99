"""Drawing primitives on numpy images: colour maps, blends, group boundaries, class names.

Images are ``[H, W, 3]`` uint8 RGB; label and group maps are integer ``[H, W]``.
Every function returns a new array and leaves its inputs untouched.
"""

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .palette import BOUNDARY_COLOR, group_palette
from .segments import LabelPosition, boundary_mask, label_positions


def colorize(label_map: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """``[H, W]`` ids -> ``[H, W, 3]`` uint8 colours from ``palette [N, 3]``."""
    label_map = np.asarray(label_map)
    if label_map.size and (label_map.min() < 0 or label_map.max() >= len(palette)):
        raise ValueError(
            f"label ids must lie in [0, {len(palette)}), got {label_map.min()}..{label_map.max()}"
        )
    return np.asarray(palette, dtype=np.uint8)[label_map]


def blend(image: np.ndarray, overlay: np.ndarray, alpha: float, mask: np.ndarray | None = None) -> np.ndarray:
    """``(1 - alpha) * image + alpha * overlay`` where ``mask`` (all pixels if None), else ``image``."""
    mixed = (1.0 - alpha) * image.astype(np.float32) + alpha * overlay.astype(np.float32)
    out = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    if mask is not None:
        out = np.where(mask[..., None], out, image)
    return out


def draw_prediction(
    image: np.ndarray,
    labels: np.ndarray,
    palette: np.ndarray,
    alpha: float = 0.5,
    background_index: int | None = 0,
) -> np.ndarray:
    """Class colours blended over ``image``; ``background_index`` pixels keep the image."""
    mask = None if background_index is None else np.asarray(labels) != background_index
    return blend(image, colorize(labels, palette), alpha, mask)


def draw_groups(
    image: np.ndarray | None,
    group_map: np.ndarray,
    alpha: float = 0.6,
    palette: np.ndarray | None = None,
    boundary_color: Sequence[int] | None = BOUNDARY_COLOR,
    boundary_thickness: int = 1,
) -> np.ndarray:
    """One colour per group id (blended over ``image`` unless it is None), boundaries drawn.

    Colours are tied to the group id, so group ``g`` has the same colour in every
    picture of the same stage. ``palette`` defaults to ``group_palette(max id + 1)``.
    """
    group_map = np.asarray(group_map)
    if palette is None:
        palette = group_palette(int(group_map.max()) + 1 if group_map.size else 1)
    colors = colorize(group_map, palette)
    out = colors if image is None else blend(image, colors, alpha)
    if boundary_color is not None:
        out = out.copy()
        out[boundary_mask(group_map, boundary_thickness)] = np.asarray(boundary_color, dtype=np.uint8)
    return out


def default_font_size(height: int, width: int) -> int:
    """Text height that reads well at the picture's size (10 to 40 pixels)."""
    return int(np.clip(min(height, width) // 22, 10, 40))


@lru_cache(maxsize=16)
def load_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at ``size`` pixels (the fixed bitmap font without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # old Pillow or no FreeType
        return ImageFont.load_default()


def text_color_for(background: Sequence[int]) -> tuple[int, int, int]:
    """Black on light backgrounds, white on dark ones (ITU-R BT.601 luma)."""
    r, g, b = (int(c) for c in background[:3])
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def draw_text_box(
    draw: ImageDraw.ImageDraw,
    text: str,
    center: tuple[int, int],
    fill: Sequence[int],
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    bounds: tuple[int, int],
) -> None:
    """Write ``text`` in a box of colour ``fill`` centred at ``center = (y, x)``, kept inside ``bounds = (H, W)``."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = 2
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    height, width = bounds
    x0 = int(np.clip(center[1] - box_w // 2, 0, max(0, width - box_w)))
    y0 = int(np.clip(center[0] - box_h // 2, 0, max(0, height - box_h)))
    fill_rgb = tuple(int(c) for c in fill[:3])
    draw.rectangle((x0, y0, x0 + box_w - 1, y0 + box_h - 1), fill=fill_rgb, outline=(0, 0, 0))
    draw.text((x0 + pad - left, y0 + pad - top), text, fill=text_color_for(fill_rgb), font=font)


def draw_labels(
    image: np.ndarray,
    label_map: np.ndarray,
    class_names: Sequence[str],
    palette: np.ndarray,
    positions: Sequence[LabelPosition] | None = None,
    ignore_index: int | None = 0,
    font_size: int | None = None,
    min_area_fraction: float = 0.0,
) -> np.ndarray:
    """Write the class name at every connected segment of ``label_map``.

    ``positions`` defaults to ``label_positions(label_map, ignore_index, min_area)`` with
    ``min_area`` the larger of the font size squared and ``min_area_fraction`` of the image, so
    specks and slivers are not labelled (the largest segment of every class always is).
    """
    height, width = image.shape[:2]
    size = font_size or default_font_size(height, width)
    if positions is None:
        min_area = max(size * size, int(np.ceil(min_area_fraction * label_map.size)))
        positions = label_positions(label_map, ignore_index=ignore_index, min_area=min_area, max_depth=size)
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    font = load_font(size)
    for pos in positions:
        draw_text_box(draw, class_names[pos.label], (pos.y, pos.x), palette[pos.label], font, (height, width))
    return np.asarray(canvas)
