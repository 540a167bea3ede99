"""The grounding picture: the image with a colour per phrase and, below it, the caption with each
phrase underlined in its colour (a phrase with an empty mask is underlined with a dashed line)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .draw import blend, default_font_size, load_font
from .palette import group_palette

__all__ = ["draw_grounding", "phrase_palette"]


def phrase_palette(num_phrases: int) -> np.ndarray:
    """``[num_phrases + 1, 3]`` uint8: black for background (index 0), then distinct bright colours."""
    return np.concatenate([np.zeros((1, 3), np.uint8), group_palette(max(num_phrases, 1))[:num_phrases]])


def draw_grounding(
    image: np.ndarray,
    labels: np.ndarray,
    caption: str,
    spans: Sequence[tuple[int, int]],
    empty: Sequence[bool] | None = None,
    alpha: float = 0.55,
    upscale_to: int = 384,
) -> Image.Image:
    """Compose the grounding picture.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        labels: ``[H, W]`` int, 0 = background, i = the i-th phrase (``spans[i - 1]``).
        caption: the grounded sentence.
        spans: character spans of the phrases, in label order.
        empty: per phrase, whether its mask is empty (drawn dashed).
        alpha: overlay opacity on the phrases' pixels.
        upscale_to: small images are enlarged (nearest) until their short side reaches this.
    """
    palette = phrase_palette(len(spans))
    overlay = blend(image, palette[labels], alpha, mask=labels > 0)
    height, width = labels.shape
    factor = max(1, upscale_to // max(1, min(height, width)))
    picture = Image.fromarray(overlay).resize((width * factor, height * factor), Image.NEAREST)
    font = load_font(default_font_size(*picture.size[::-1]))
    lines = _wrap(caption, font, picture.width - 16)
    left, top, right, bottom = font.getbbox("Ag")
    line_h = bottom - top + 10
    canvas = Image.new("RGB", (picture.width, picture.height + line_h * len(lines) + 12), "white")
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for row, (start, text) in enumerate(lines):
        y = picture.height + 6 + row * line_h
        draw.text((8, y - top), text, fill=(0, 0, 0), font=font)
        for index, (s, e) in enumerate(spans):
            a, b = max(s, start), min(e, start + len(text))
            if a >= b:
                continue
            x0 = 8 + draw.textlength(text[: a - start], font=font)
            x1 = 8 + draw.textlength(text[: b - start], font=font)
            color = tuple(int(c) for c in palette[index + 1])
            y_line = y + bottom - top + 2
            if empty is not None and empty[index]:
                for x in np.arange(x0, x1, 6):
                    draw.line((x, y_line, min(x + 3, x1), y_line), fill=color, width=3)
            else:
                draw.line((x0, y_line, x1, y_line), fill=color, width=3)
    return canvas


def _wrap(text: str, font, width: int) -> list[tuple[int, str]]:
    """Greedy word wrap: (offset into ``text``, line) pairs whose pixel width fits ``width``."""
    lines: list[tuple[int, str]] = []
    start = 0
    while start < len(text):
        end = len(text)
        while end > start and font.getlength(text[start:end]) > width:
            space = text.rfind(" ", start, end - 1)
            end = space if space > start else end - 1
        lines.append((start, text[start:end]))
        start = end
        while start < len(text) and text[start] == " ":
            start += 1
    return lines or [(0, "")]
