"""Transformer blocks: pre-norm self-attention block and post-norm cross-attention block."""

from __future__ import annotations

import torch
from timm.layers import DropPath
from torch import nn

from groupvit.layers.attention import Attention, CrossAttention
from groupvit.layers.mlp import Mlp


class TransformerBlock(nn.Module):
    """Pre-norm block: x + DropPath(attn(LN(x))), then x + DropPath(mlp(LN(x))). [B, N, C] -> [B, N, C]."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        act_layer: type[nn.Module] = nn.GELU,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, is_causal: bool = False) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), is_causal=is_causal))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CrossAttentionBlock(nn.Module):
    """Post-norm cross-attention block used before the assignment.

    Queries are the (already normalised) segment queries, keys the (already normalised) image
    tokens, so there is no pre-norm; the output is normalised instead:
    ``LN(y + mlp(LN(y)))`` with ``y = query + attn(query, key)``. [B, M, C], [B, N, C] -> [B, M, C].
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.attn = CrossAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_post = nn.LayerNorm(dim, eps=eps)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        x = query + self.attn(query, key)
        x = x + self.mlp(self.norm2(x))
        return self.norm_post(x)
