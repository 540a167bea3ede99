"""The overview figure: input | groups of every stage | prediction with a legend (PIL only)."""

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .draw import draw_groups, draw_prediction, load_font

_MARGIN = 8
_BACKGROUND = (255, 255, 255)
_TEXT = (20, 20, 20)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[H, W, 3]`` uint8 -> ``[h, w, 3]`` (bilinear); ``size = (h, w)``."""
    if image.shape[:2] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))


def resize_map(label_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an integer ``[H, W]`` map to ``size = (h, w)``."""
    label_map = np.asarray(label_map)
    height, width = label_map.shape
    if (height, width) == size:
        return label_map
    rows = np.minimum((np.arange(size[0]) + 0.5) * height / size[0], height - 1).astype(np.int64)
    cols = np.minimum((np.arange(size[1]) + 0.5) * width / size[1], width - 1).astype(np.int64)
    return label_map[rows[:, None], cols[None, :]]


def legend_entries(labels: np.ndarray, class_names: Sequence[str]) -> list[int]:
    """Class ids present in ``labels``, largest area first."""
    counts = np.bincount(np.asarray(labels).ravel(), minlength=len(class_names))
    present = np.flatnonzero(counts)
    return [int(i) for i in present[np.argsort(-counts[present], kind="stable")]]


def draw_legend(
    entries: Sequence[int],
    class_names: Sequence[str],
    palette: np.ndarray,
    height: int,
    font_size: int,
) -> np.ndarray:
    """A white ``[height, w, 3]`` panel: a colour swatch and the name of each entry, in columns."""
    font = load_font(font_size)
    row_h = font_size + 6
    per_column = max(1, (height - _MARGIN) // row_h)
    columns = [entries[i : i + per_column] for i in range(0, len(entries), per_column)] or [[]]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    col_widths = [
        font_size + 6 + max((int(probe.textlength(class_names[i], font=font)) for i in col), default=0)
        for col in columns
    ]
    width = sum(col_widths) + _MARGIN * (len(columns) + 1)
    panel = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(panel)
    x = _MARGIN
    for col, col_w in zip(columns, col_widths):
        for row, class_id in enumerate(col):
            y = _MARGIN // 2 + row * row_h
            color = tuple(int(c) for c in palette[class_id][:3])
            draw.rectangle((x, y + 2, x + font_size, y + 2 + font_size), fill=color, outline=(0, 0, 0))
            draw.text((x + font_size + 6, y + 2), class_names[class_id], fill=_TEXT, font=font)
        x += col_w + _MARGIN
    return np.asarray(panel)


def overview(
    image: np.ndarray,
    group_maps: Sequence[np.ndarray],
    labels: np.ndarray,
    class_names: Sequence[str],
    palette: np.ndarray,
    background_index: int | None = 0,
    panel_height: int | None = None,
) -> np.ndarray:
    """One ``[h, w, 3]`` uint8 figure: input | stage-1 groups | ... | prediction | legend.

    Maps of any size are fitted to the panel (nearest); panels are ``panel_height``
    pixels high (default: the image height clipped to [224, 448]).
    """
    height, width = image.shape[:2]
    panel_h = panel_height or int(np.clip(height, 224, 448))
    size = (panel_h, max(1, round(width * panel_h / height)))
    base = resize_image(image, size)
    labels_p = resize_map(labels, size)
    panels = [("input", base)]
    for stage, group_map in enumerate(group_maps, start=1):
        group_map = resize_map(group_map, size)
        count = len(np.unique(group_map))
        panels.append(
            (f"stage {stage}: {count} group{'s' if count != 1 else ''}", draw_groups(base, group_map))
        )
    panels.append(("prediction", draw_prediction(base, labels_p, palette, background_index=background_index)))

    font_size = int(np.clip(panel_h // 20, 11, 22))
    legend = draw_legend(legend_entries(labels_p, class_names), class_names, palette, panel_h, font_size)
    title_h = font_size + 10
    total_w = sum(p.shape[1] for _, p in panels) + legend.shape[1] + _MARGIN * (len(panels) + 1)
    figure = Image.new("RGB", (total_w, panel_h + title_h + _MARGIN), _BACKGROUND)
    draw = ImageDraw.Draw(figure)
    font = load_font(font_size)
    x = _MARGIN
    for title, picture in panels:
        text_w = draw.textlength(title, font=font)
        draw.text((x + max(0.0, (picture.shape[1] - text_w) / 2), 4), title, fill=_TEXT, font=font)
        figure.paste(Image.fromarray(picture), (x, title_h))
        x += picture.shape[1] + _MARGIN
    figure.paste(Image.fromarray(legend), (x, title_h))
    return np.asarray(figure)
