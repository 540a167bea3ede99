"""Multi-scale and flip test-time augmentation: score several views of an image, average back.

A view resizes the input by a scale (bilinear, align_corners=False) and may flip it left-right;
its scores are flipped back and resized to the input size, and the views' scores are averaged.
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


def tta_views(scales: Sequence[float], flip: bool) -> list[View]:
    """Every scale, unflipped and (with ``flip``) flipped: ``len(scales) * (1 + flip)`` views."""
    return [
        View(float(scale), flipped) for scale in scales for flipped in ((False, True) if flip else (False,))
    ]


def view_size(size: tuple[int, int], view: View) -> tuple[int, int]:
    """(H, W) of the view of an input of ``size``: each side scaled and rounded, at least 1."""
    return max(1, round(size[0] * view.scale)), max(1, round(size[1] * view.scale))


def apply_view(images: Tensor, view: View) -> Tensor:
    """images [B, 3, H, W] -> the view [B, 3, h, w]."""
    size = view_size((images.shape[-2], images.shape[-1]), view)
    if size != tuple(images.shape[-2:]):
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
    return images.flip(dims=(3,)) if view.flip else images


def undo_view(scores: Tensor, view: View, size: tuple[int, int]) -> Tensor:
    """The view's scores [B, C, h, w] -> [B, C, *size] on the input's pixels (flipped back, resized)."""
    if view.flip:
        scores = scores.flip(dims=(3,))
    if tuple(scores.shape[-2:]) != tuple(size):
        scores = F.interpolate(scores, size=tuple(size), mode="bilinear", align_corners=False)
    return scores
