"""Multi-head self- and cross-attention on top of ``F.scaled_dot_product_attention``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from groupvit.layers.linear import Linear


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection.

    The fused ``qkv`` weight stacks the q, k and v rows in that order ([3 * dim, dim]), the layout of
    the official release and of ``nn.MultiheadAttention.in_proj_weight``.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = Linear(dim, dim)

    def forward(self, x: torch.Tensor, is_causal: bool = False) -> torch.Tensor:
        """x: [B, N, C] -> [B, N, C]; ``is_causal`` masks future tokens (text tower)."""
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, nh, N, hd)
        x = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class CrossAttention(nn.Module):
    """Multi-head attention of queries [B, M, C] over keys/values [B, N, C], separate projections."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q_proj = Linear(dim, dim, bias=qkv_bias)
        self.k_proj = Linear(dim, dim, bias=qkv_bias)
        self.v_proj = Linear(dim, dim, bias=qkv_bias)
        self.proj = Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        return x.reshape(B, N, self.num_heads, C // self.num_heads).transpose(1, 2)  # (B, nh, N, hd)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """query [B, M, C], key (= value source) [B, N, C] -> [B, M, C]."""
        B, M, C = query.shape
        q, k, v = (
            self._heads(self.q_proj(query)),
            self._heads(self.k_proj(key)),
            self._heads(self.v_proj(key)),
        )
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, M, C))
