"""Gated cross-attention (FIBER) and the transformer block that carries it.

FIBER puts the fusion inside the backbone: ``x~ = SelfAttn(x); x = x + x~ + alpha * CrossAttn(x~, y);
x = x + FFN(x)``. ``alpha`` is a learnable scalar per layer that starts at 0, so the fused block
first computes exactly the unfused one; without a context the cross-attention is not run at all.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from groupvit.layers.blocks import TransformerBlock
from groupvit.layers.linear import Linear


class Context(NamedTuple):
    """Tokens of the other modality that a fused block attends to."""

    tokens: torch.Tensor  # [B, L, C_ctx] per-token features of the other tower
    mask: torch.Tensor | None  # BoolTensor [B, L], True = attend (None: every token is valid)


class GatedCrossAttention(nn.Module):
    """``alpha * CrossAttn(LN(x), context)``: [B, N, dim], Context [B, L, context_dim] -> [B, N, dim].

    Keys and values are projected from the context's own width to ``dim`` here, so the towers keep
    their widths. Padded context tokens (mask False) get no attention. ``relative_output``: each
    token's output is rescaled to the norm of that token of ``x`` (before ``alpha``), so the gate
    alone sets the fusion's share, ``|alpha| * ||x||``, whatever the projections learn.
    """

    def __init__(
        self, dim: int, context_dim: int, num_heads: int, eps: float = 1e-5, relative_output: bool = False
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.relative_output = relative_output
        if relative_output:  # a key in the checkpoint, so that the loaders rebuild the same layer
            self.register_buffer("relative_output_flag", torch.ones(()))
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.norm_context = nn.LayerNorm(context_dim, eps=eps)
        self.q_proj = Linear(dim, dim)
        self.k_proj = Linear(context_dim, dim)
        self.v_proj = Linear(context_dim, dim)
        self.proj = Linear(dim, dim)
        # the gate: 0 keeps a loaded unfused checkpoint's outputs bit for bit (0 * finite = 0)
        self.alpha = nn.Parameter(torch.zeros(()))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        return x.reshape(B, N, self.num_heads, C // self.num_heads).transpose(1, 2)  # (B, nh, N, hd)

    def forward(self, x: torch.Tensor, context: Context) -> torch.Tensor:
        B, N, C = x.shape
        ctx = self.norm_context(context.tokens)
        q = self._heads(self.q_proj(self.norm(x)))
        k, v = self._heads(self.k_proj(ctx)), self._heads(self.v_proj(ctx))
        mask = None if context.mask is None else context.mask[:, None, None, :]  # (B, 1, 1, L)
        out = self.proj(
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(B, N, C)
        )
        if self.relative_output:
            out = out * (x.norm(dim=-1, keepdim=True) / out.norm(dim=-1, keepdim=True).clamp(min=1e-6))
        return self.alpha * out


class FusedTransformerBlock(TransformerBlock):
    """:class:`TransformerBlock` plus a gated cross-attention on its self-attention output.

    ``forward(x)`` or ``forward(x, context=None)`` is the plain block (same keys, same maths, no
    cross-attention cost); with a :class:`Context` the block is FIBER's. [B, N, C] -> [B, N, C].
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        context_dim: int,
        eps: float = 1e-5,
        relative_output: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(dim, num_heads, eps=eps, **kwargs)
        self.fusion = GatedCrossAttention(
            dim, context_dim, num_heads, eps=eps, relative_output=relative_output
        )

    def forward(
        self, x: torch.Tensor, is_causal: bool = False, context: Context | None = None
    ) -> torch.Tensor:
        if context is None:
            return super().forward(x, is_causal=is_causal)
        attended = self.drop_path(self.attn(self.norm1(x), is_causal=is_causal))
        x = x + attended + self.drop_path(self.fusion(attended, context))
        return x + self.drop_path(self.mlp(self.norm2(x)))
