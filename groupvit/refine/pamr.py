"""Pixel-adaptive mask refinement (PAMR, Araslanov & Roth, CVPR 2020), written from its maths.

Score maps from groups are blocky at the patch grid and ignore the image's edges. PAMR propagates
each pixel's scores from its neighbours, weighted by how alike their colours are:

* neighbours of pixel i: the 8 pixels of a 3 x 3 ring at each dilation d (``i + d * o`` for the
  offsets o in {-1, 0, 1}^2 without (0, 0)), image borders replicated;
* colour distance scaled by the local contrast: ``x_ij = -mean_c |I_ic - I_jc| / (lam * sigma_ic + eps)``
  with ``sigma_ic`` the standard deviation of channel c over i and all its neighbours, so a weak
  edge in a flat region counts as much as a strong edge in a textured one;
* affinities ``a_ij = softmax_j(x_ij)`` over all neighbours of all dilations (a row sums to 1);
* T iterations of ``m_i <- sum_j a_ij m_j`` on every score channel.

The affinities depend on the image only, so every channel is refined on its own: refining a subset of
channels gives those channels' values exactly, and a channel that is 0 everywhere stays 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["neighbour_offsets", "pamr_affinity", "pamr", "pamr_matrix"]

_RING = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def neighbour_offsets(dilations: Sequence[int]) -> list[tuple[int, int]]:
    """(dy, dx) of every neighbour: the 8-pixel ring at each dilation, in dilation order."""
    return [(d * dy, d * dx) for d in dilations for dy, dx in _RING]


def pamr_affinity(
    images: Tensor, dilations: Sequence[int] = (1, 2, 4, 8, 12, 24), lam: float = 0.1, eps: float = 1e-8
) -> Tensor:
    """Neighbour affinities of every pixel (rows sum to 1).

    Args:
        images: [B, 3, H, W] (any affine colour scaling: the distances are divided by the local std).
        dilations: ring radii in pixels.
        lam: scale of the local std in the distance (small: sharp edges).
        eps: keeps the distance finite in a perfectly flat neighbourhood.

    Returns:
        Tensor [B, J, H, W], J = 8 * len(dilations), in :func:`neighbour_offsets` order.
    """
    offsets = neighbour_offsets(dilations)
    pad = max(dilations)
    height, width = images.shape[-2:]
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")

    def neighbour(
        dy: int, dx: int
    ) -> Tensor:  # [B, 3, H, W], one alive at a time (a 5-D stack is J x larger)
        return padded[:, :, pad + dy : pad + dy + height, pad + dx : pad + dx + width]

    # std over the pixel and its J neighbours from running sums (unbiased, as Tensor.std)
    total, squares = images.clone(), images.square()
    for dy, dx in offsets:
        total += neighbour(dy, dx)
        squares += neighbour(dy, dx).square()
    count = len(offsets) + 1
    sigma = ((squares - total.square() / count) / (count - 1)).clamp(min=0).sqrt()  # [B, 3, H, W]
    scale = lam * sigma + eps
    distance = torch.stack(
        [-((images - neighbour(dy, dx)).abs() / scale).mean(dim=1) for dy, dx in offsets], dim=1
    )  # [B, J, H, W]
    return distance.softmax(dim=1)


def pamr(
    images: Tensor, scores: Tensor, iterations: int = 10, dilations: Sequence[int] = (1, 2, 4, 8, 12, 24)
) -> Tensor:
    """Refine score maps along the image's colours.

    Args:
        images: [B, 3, H, W] the images the scores belong to.
        scores: [B, C, H, W] score maps at the images' size.
        iterations: propagation steps T (0 returns ``scores`` itself).
        dilations: neighbour ring radii (TCL / NACLIP: 1, 2, 4, 8, 12, 24).

    Returns:
        Tensor [B, C, H, W] in channels-last memory order (the per-pixel argmax reads contiguous rows).
    """
    if images.shape[0] != scores.shape[0] or images.shape[-2:] != scores.shape[-2:]:
        raise ValueError(
            f"images {tuple(images.shape)} and scores {tuple(scores.shape)} differ in batch or size"
        )
    if iterations == 0:
        return scores
    affinity = pamr_affinity(images.to(scores.dtype), dilations)  # [B, J, H, W]
    offsets = neighbour_offsets(dilations)
    pad = max(dilations)
    height, width = scores.shape[-2:]
    refined = scores.contiguous()
    for _ in range(iterations):
        padded = F.pad(refined, (pad, pad, pad, pad), mode="replicate")
        step = torch.zeros_like(refined)
        for j, (dy, dx) in enumerate(offsets):  # one neighbour map alive at a time, not [B, C, J, H, W]
            step.addcmul_(
                padded[:, :, pad + dy : pad + dy + height, pad + dx : pad + dx + width],
                affinity[:, j : j + 1],
            )
        refined = step
    return refined.contiguous(memory_format=torch.channels_last)


def pamr_matrix(images: Tensor, dilations: Sequence[int] = (1, 2, 4, 8, 12, 24)) -> Tensor:
    """PAMR's propagation step as a dense matrix, for small maps (a patch grid, not an image).

    ``pamr(images, m, T)`` equals ``T`` products ``m <- m @ A.transpose(1, 2)`` on maps flattened to
    [B, C, H * W]: the same affinities (neighbours past the border land on the border pixel, as the
    replicate padding does), one batched matrix product per step instead of 8 * len(dilations) shifted
    maps. Its size grows with (H * W)^2: 256 KB per image on a 16 x 16 grid, 64 MB at 64 x 64.

    Args:
        images: [B, 3, H, W].
        dilations: ring radii in pixels of ``images``.

    Returns:
        Tensor [B, H * W, H * W]; row i holds pixel i's affinities (it sums to 1).
    """
    affinity = pamr_affinity(images, dilations)  # [B, J, H, W]
    batch, _, height, width = affinity.shape
    ys = torch.arange(height, device=images.device).view(height, 1)
    xs = torch.arange(width, device=images.device).view(1, width)
    columns = torch.stack(
        [
            ((ys + dy).clamp(0, height - 1) * width + (xs + dx).clamp(0, width - 1)).reshape(-1)
            for dy, dx in neighbour_offsets(dilations)
        ],
        dim=1,
    )  # [H * W, J]
    matrix = affinity.new_zeros(batch, height * width, height * width)
    values = affinity.flatten(2).transpose(1, 2)  # [B, H * W, J]
    return matrix.scatter_add_(2, columns.expand(batch, -1, -1), values)
