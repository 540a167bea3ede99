"""Resampling of the learned 2-D absolute positional embedding to another patch grid."""

from __future__ import annotations

import torch
from timm.layers import resample_abs_pos_embed


def resample_pos_embed(
    pos_embed: torch.Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int] | None = None
) -> torch.Tensor:
    """Resample a [1, h*w, C] positional embedding to ``new_grid`` (h', w'), returning [1, h'*w', C].

    Bicubic, ``align_corners=False`` and no anti-aliasing, as in the released evaluation; the identity
    (same tensor) when the grids match. ``old_grid`` defaults to a square grid. There is no class token.
    """
    if old_grid is None:
        side = int(round(pos_embed.shape[1] ** 0.5))
        old_grid = (side, side)
    if old_grid[0] * old_grid[1] != pos_embed.shape[1]:
        raise ValueError(f"pos_embed has {pos_embed.shape[1]} positions, not a {old_grid} grid")
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    return resample_abs_pos_embed(
        pos_embed,
        new_size=list(new_grid),
        old_size=list(old_grid),
        num_prefix_tokens=0,
        interpolation="bicubic",
        antialias=False,
        align_corners=False,
    )
