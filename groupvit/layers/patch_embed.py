"""Image to patch tokens: strided conv -> LayerNorm."""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """[B, C, H, W] -> ([B, h*w, D], (h, w)) with h = H // patch, w = W // patch.

    Any H, W is accepted (trailing pixels that do not fill a patch are dropped by the conv).
    """

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim, eps=eps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected images [B, {self.in_chans}, H, W], got shape {tuple(x.shape)}")
        if x.shape[2] < self.patch_size or x.shape[3] < self.patch_size:
            raise ValueError(f"image {tuple(x.shape[2:])} is smaller than one {self.patch_size}px patch")
        x = self.proj(x)  # (B, D, h, w)
        grid = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), grid
