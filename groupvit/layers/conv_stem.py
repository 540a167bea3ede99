"""Image to patch tokens through a small convolutional stem (Xiao et al. 2021, "Early
convolutions help transformers see better"): 3x3 stride-2 convs with BatchNorm and ReLU, then a
1x1 conv to the token width and a LayerNorm.

The single patch projection is one linear map of each patch: a tiny ViT trained from captions
must then learn outlines from self-attention alone. The stem's nonlinear, overlapping 3x3
filters see edges and corners first, and its tokens tile the image exactly as the patch
projection's do (``patch_size`` = 2 ** number of stride-2 convs).

Optional 3x3 stride-1 convs after each stride-2 conv make the stem a small CNN: with one per
resolution a token of an 8-px grid sees 43 px instead of 15, a whole object of the 64-px synthetic
scenes, so its outline can be told from the token itself rather than assembled by attention.

``pyramid=True`` keeps that view on a grid twice as fine: the stem runs one stride-2 conv further
(to ``2 * patch_size``), and each token is the sum of a projection of the ``patch_size``-stride
features (local: edges, fill) and of the coarser features repeated over its 2 x 2 cells (context:
which outline), a feature-pyramid merge. More tokens per object at the receptive field of the
deeper stem, for objects only a few patches across.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvStem(nn.Module):
    """[B, C, H, W] -> ([B, h*w, D], (h, w)) with h = H // patch, w = W // patch.

    Args:
        patch_size: token stride in pixels, a power of two >= 2 (one stride-2 conv per factor 2).
        in_chans: image channels.
        embed_dim: token width D; the convs widen from ``D / 2 ** (n - 1)`` to D over the n convs.
        eps: LayerNorm epsilon.
        extra_convs: 3x3 stride-1 conv-BatchNorm-ReLU layers after each stride-2 conv, at its width.
        pyramid: one more stride-2 stage, its features upsampled onto the ``patch_size`` grid and
            added to that stage's (each through its own 1x1 projection).
    """

    def __init__(
        self,
        patch_size: int,
        in_chans: int,
        embed_dim: int,
        eps: float = 1e-5,
        extra_convs: int = 0,
        pyramid: bool = False,
    ) -> None:
        super().__init__()
        num_convs = patch_size.bit_length() - 1
        if patch_size < 2 or 2**num_convs != patch_size:
            raise ValueError(f"a conv stem needs a power-of-two patch_size >= 2, got {patch_size}")
        if extra_convs < 0:
            raise ValueError(f"extra_convs must be >= 0, got {extra_convs}")
        self.patch_size = patch_size
        self.in_chans = in_chans
        num_convs += int(pyramid)
        layers: list[nn.Module] = []
        channels = in_chans
        for i in range(num_convs):
            out = max(8, embed_dim // 2 ** (num_convs - 1 - i))
            for stride in (2,) + (1,) * extra_convs:
                layers += [
                    nn.Conv2d(channels, out, kernel_size=3, stride=stride, padding=1, bias=False),
                    nn.BatchNorm2d(out),
                    nn.ReLU(inplace=True),
                ]
                channels = out
            if pyramid and i == num_convs - 2:
                self.fine_proj = nn.Conv2d(channels, embed_dim, kernel_size=1)
                self._fine_end = len(layers)  # convs[:_fine_end] end on the patch_size grid
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Conv2d(channels, embed_dim, kernel_size=1)
        self.norm = nn.LayerNorm(embed_dim, eps=eps)
        self.pyramid = pyramid

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected images [B, {self.in_chans}, H, W], got shape {tuple(x.shape)}")
        if x.shape[2] < self.patch_size or x.shape[3] < self.patch_size:
            raise ValueError(f"image {tuple(x.shape[2:])} is smaller than one {self.patch_size}px patch")
        # crop to whole patches, as the patch projection drops the pixels that fill no patch
        h, w = x.shape[2] // self.patch_size, x.shape[3] // self.patch_size
        x = x[:, :, : h * self.patch_size, : w * self.patch_size]
        if self.pyramid:
            fine = x
            for layer in self.convs[: self._fine_end]:
                fine = layer(fine)  # (B, C, h, w)
            coarse = fine
            for layer in self.convs[self._fine_end :]:
                coarse = layer(coarse)  # (B, C', ceil(h / 2), ceil(w / 2))
            # coarse cell (i, j) covers fine cells (2i..2i+1, 2j..2j+1); odd grids drop the overhang
            up = self.proj(coarse).repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)[:, :, :h, :w]
            x = self.fine_proj(fine) + up  # (B, D, h, w)
        else:
            x = self.proj(self.convs(x))  # (B, D, h, w)
        return self.norm(x.flatten(2).transpose(1, 2)), (h, w)
