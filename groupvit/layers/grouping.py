"""Grouping block: merges image tokens into segment tokens by (hard) assignment to group tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from groupvit.layers.blocks import CrossAttentionBlock
from groupvit.layers.linear import Linear
from groupvit.layers.mlp import MixerMlp, Mlp


def hard_softmax(logits: torch.Tensor, dim: int) -> torch.Tensor:
    """One-hot of the softmax argmax along ``dim`` with a straight-through gradient.

    Forward value is exactly one-hot; the backward pass is the softmax's (``hard - soft.detach() + soft``).
    """
    soft = logits.softmax(dim)
    hard = torch.zeros_like(soft).scatter_(dim, soft.argmax(dim, keepdim=True), 1.0)
    return hard - soft.detach() + soft


class AssignAttention(nn.Module):
    """Single-head assignment of image tokens to segment queries.

    The softmax runs over the *group* axis, so each image token is distributed over (or, hard,
    assigned to exactly one of) the groups. Each group's row is then divided by its total weight
    + ``assign_eps`` so that a segment token is (nearly) the mean of its tokens' values.
    """

    def __init__(
        self, dim: int, qkv_bias: bool = True, assign_eps: float = 1.0, tau: float = 1.0, hard: bool = True
    ) -> None:
        super().__init__()
        self.scale = dim**-0.5
        self.assign_eps = assign_eps
        self.tau = tau
        self.hard = hard
        self.q_proj = Linear(dim, dim, bias=qkv_bias)
        self.k_proj = Linear(dim, dim, bias=qkv_bias)
        self.v_proj = Linear(dim, dim, bias=qkv_bias)
        self.proj = Linear(dim, dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query [B, G, C] segment queries, key [B, N, C] image tokens.

        Returns (out [B, G, C], soft assignment [B, G, N] in fp32: softmax over G, no noise, no one-hot).
        """
        q, k, v = self.q_proj(query), self.k_proj(key), self.v_proj(key)
        # fp32 logits and softmax: under bf16 autocast near-ties would flip the argmax arbitrarily
        with torch.autocast(device_type=q.device.type, enabled=False):
            logits = (q.float() @ k.float().transpose(1, 2)) * self.scale  # (B, G, N)
        attn = self.assignment(logits)
        attn = attn / (attn.sum(dim=-1, keepdim=True) + self.assign_eps)
        out = attn.to(v.dtype) @ v  # (B, G, C)
        return self.proj(out), logits.softmax(dim=1)

    def assignment(self, logits: torch.Tensor) -> torch.Tensor:
        """Assignment weights [B, G, N] from logits [B, G, N], normalised over the group axis (dim 1).

        Training: Gumbel-softmax (noise with temperature ``tau``); eval: plain softmax. With ``hard``
        the forward value is one-hot per token and the gradient is the soft one (straight-through).
        """
        if self.training:
            return F.gumbel_softmax(logits, tau=self.tau, hard=self.hard, dim=1)
        return hard_softmax(logits, dim=1) if self.hard else logits.softmax(dim=1)


class GroupingBlock(nn.Module):
    """Turn ``num_group_tokens`` group tokens + N image tokens into ``num_output_groups`` segment tokens.

    Steps: LN the group tokens, mix them along the token axis to ``num_output_groups`` queries (LN),
    let the queries attend to the (LN) image tokens (post-norm cross-attention block), assign image
    tokens to queries (:class:`AssignAttention`), add the queries back, then an LN + channel MLP residual.
    With ``query_residual=False`` the queries are not added back: a segment token is then a function
    of the tokens assigned to it only (the queries have attended to the whole image).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_group_tokens: int,
        num_output_groups: int,
        token_mlp_ratio: float = 0.5,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        assign_eps: float = 1.0,
        tau: float = 1.0,
        hard: bool = True,
        eps: float = 1e-5,
        query_residual: bool = True,
    ) -> None:
        super().__init__()
        self.num_output_groups = num_output_groups
        self.query_residual = query_residual
        self.norm_tokens = nn.LayerNorm(dim, eps=eps)
        self.mlp_inter = MixerMlp(num_group_tokens, int(dim * token_mlp_ratio), num_output_groups)
        self.norm_post_tokens = nn.LayerNorm(dim, eps=eps)
        self.norm_x = nn.LayerNorm(dim, eps=eps)
        self.pre_assign_attn = CrossAttentionBlock(dim, num_heads, mlp_ratio, qkv_bias=qkv_bias, eps=eps)
        self.assign = AssignAttention(dim, qkv_bias=qkv_bias, assign_eps=assign_eps, tau=tau, hard=hard)
        self.norm_new_x = nn.LayerNorm(dim, eps=eps)
        self.mlp_channels = Mlp(dim, int(dim * mlp_ratio), dim)

    def forward(self, x: torch.Tensor, group_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, N, C] image tokens, group_tokens [B, S, C].

        Returns (segment tokens [B, G, C], soft assignment [B, G, N]) with G = ``num_output_groups``.
        """
        group_tokens = self.norm_tokens(group_tokens)
        x = self.norm_x(x)
        queries = self.norm_post_tokens(self.mlp_inter(group_tokens))  # (B, G, C)
        queries = self.pre_assign_attn(queries, x)
        out, soft = self.assign(queries, x)
        if self.query_residual:
            out = out + queries
        out = out + self.mlp_channels(self.norm_new_x(out))
        return out, soft
