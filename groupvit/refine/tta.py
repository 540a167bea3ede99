"""Multi-scale, flip and shift test-time augmentation: score several views of an image, average back.

A view resizes the input by a scale (bilinear, align_corners=False), may flip it left-right and
may pad it by a shift of a few pixels on each side (edge pixels repeated), which moves the image
down and right against the token grid; its scores are cropped, flipped back and resized to the
input size, and the views' scores are averaged. With a shift of half a patch the padded side is
still a whole number of patches, so the tokens lie exactly between the unshifted view's, and the
average of the shifted views is finer than one view's patch grid.
The identity view (scale 1, no flip) returns its inputs unchanged, so one identity view is exactly
the protocol without augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor

__all__ = ["View", "tta_views", "view_size", "apply_view", "undo_view"]


class View(NamedTuple):
    scale: float  # the input is resized by this factor
    flip: bool  # the input is flipped left-right
    shift: tuple[int, int] = (0, 0)  # (rows, columns) of edge padding on each side of the scaled input


def tta_views(scales: Sequence[float], flip: bool, shifts: Sequence[int] = (0,)) -> list[View]:
    """Every scale, unflipped and (with ``flip``) flipped, at every (down, right) pair of ``shifts``:
    ``len(scales) * (1 + flip) * len(shifts) ** 2`` views."""
    flips = (False, True) if flip else (False,)
    pairs = [(int(down), int(right)) for down in shifts for right in shifts]
    return [View(float(scale), flipped, pair) for scale in scales for flipped in flips for pair in pairs]


def _scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def view_size(size: tuple[int, int], view: View) -> tuple[int, int]:
    """(H, W) of the view of an input of ``size``: each side scaled and rounded (at least 1), plus
    twice the shift."""
    height, width = _scaled_size(size, view.scale)
    return height + 2 * view.shift[0], width + 2 * view.shift[1]


def apply_view(images: Tensor, view: View) -> Tensor:
    """images [B, 3, H, W] -> the view [B, 3, h, w]."""
    size = _scaled_size((images.shape[-2], images.shape[-1]), view.scale)
    if size != tuple(images.shape[-2:]):
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
    if view.flip:
        images = images.flip(dims=(3,))
    down, right = view.shift
    if down or right:
        images = F.pad(images, (right, right, down, down), mode="replicate")
    return images


def undo_view(scores: Tensor, view: View, size: tuple[int, int]) -> Tensor:
    """The view's scores [B, C, h, w] -> [B, C, *size] on the input's pixels (shifted back,
    flipped back, resized)."""
    down, right = view.shift
    scores = scores[..., down : scores.shape[-2] - down, right : scores.shape[-1] - right]
    if view.flip:
        scores = scores.flip(dims=(3,))
    if tuple(scores.shape[-2:]) != tuple(size):
        scores = F.interpolate(scores, size=tuple(size), mode="bilinear", align_corners=False)
    return scores
