"""Soft pixel-to-group scores: every pixel mixes the score rows of all final groups.

The paper gives each pixel the row of its argmax group (``pixel_group_ids`` / ``gather_scores``).
The product of the stages' soft assignments is a distribution over the final groups per patch
(each stage's softmax runs over its groups), so a pixel can instead take the expectation of the
rows under it: ``score(p) = sum_g P(g | p) * row_g``. Near a group boundary, where the assignment
is split, the scores then blend instead of jumping at the patch grid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor

from groupvit.zero_shot_functional import stage_group_maps

if TYPE_CHECKING:
    from groupvit.models.groupvit import SegmentationFeatures

__all__ = ["pixel_group_weights", "mix_scores"]


def pixel_group_weights(features: SegmentationFeatures, output_size: tuple[int, int]) -> Tensor:
    """P(final group | pixel): Tensor [B, G, H, W], the soft map resized bilinearly (sums to 1 over G)."""
    group_map = stage_group_maps(features.assignments)[-1]  # [B, h*w, G]
    batch, _, num_groups = group_map.shape
    grid = group_map.transpose(1, 2).reshape(batch, num_groups, *features.grid_size)
    return F.interpolate(grid, size=tuple(output_size), mode="bilinear", align_corners=False)


def mix_scores(rows: Tensor, weights: Tensor, channels: Tensor | None = None) -> Tensor:
    """Score maps ``sum_g weights[b, g] * rows[b, g]``.

    Args:
        rows: [B, G, C] score row of every group (``group_scores``).
        weights: [B, G, H, W] group weights of every pixel (:func:`pixel_group_weights`).
        channels: LongTensor [M] of channels to keep; None keeps all C.

    Returns:
        Tensor [B, M, H, W] in channels-last memory order; a channel that is 0 in every row is exactly 0.
    """
    if channels is not None:
        rows = rows.index_select(-1, channels)
    batch, num_groups, height, width = weights.shape
    pixels = weights.to(rows.dtype).flatten(2).transpose(1, 2)  # [B, H*W, G]
    return (pixels @ rows).view(batch, height, width, -1).permute(0, 3, 1, 2)
