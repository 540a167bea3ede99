"""CLIP-style causal text transformer, pooled at the end-of-text token."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from groupvit.config import TextConfig
from groupvit.layers import QuickGELU, TransformerBlock
from groupvit.layers.fusion import Context, FusedTransformerBlock


class TextTransformer(nn.Module):
    """Token ids [B, L] (L <= context_length) -> pooled text feature [B, width].

    The feature is the final-LN output at the end-of-text token, which CLIP's BPE gives the largest
    id in the vocabulary, so it is found with ``argmax`` over the ids.
    """

    def __init__(
        self, cfg: TextConfig, fusion_layers: int = 0, context_dim: int = 0, relative_output: bool = False
    ) -> None:
        """``fusion_layers`` > 0: the last that many blocks attend to ``context_dim``-wide image tokens
        (``relative_output``: :class:`~groupvit.layers.fusion.GatedCrossAttention`'s)."""
        super().__init__()
        self.cfg = cfg
        self.width = cfg.width
        self.context_length = cfg.context_length
        self.grad_checkpointing = False
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = nn.Parameter(torch.zeros(cfg.context_length, cfg.width))
        first_fused = cfg.layers - min(fusion_layers, cfg.layers)
        self.blocks = nn.ModuleList(
            FusedTransformerBlock(
                cfg.width,
                cfg.heads,
                context_dim,
                cfg.layer_norm_eps,
                relative_output=relative_output,
                mlp_ratio=cfg.mlp_ratio,
                act_layer=QuickGELU,
            )
            if i >= first_fused
            else TransformerBlock(
                cfg.width, cfg.heads, cfg.mlp_ratio, act_layer=QuickGELU, eps=cfg.layer_norm_eps
            )
            for i in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(cfg.width, eps=cfg.layer_norm_eps)
        self.init_weights()

    def init_weights(self) -> None:
        """CLIP init: residual-branch outputs scaled down with depth (std width^-0.5 * (2 * layers)^-0.5)."""
        width, layers = self.cfg.width, self.cfg.layers
        attn_std = width**-0.5
        proj_std = attn_std * (2 * layers) ** -0.5
        fc_std = (2 * width) ** -0.5
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for block in self.blocks:
            nn.init.normal_(block.attn.qkv.weight, std=attn_std)
            nn.init.normal_(block.attn.proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.fc1.weight, std=fc_std)
            nn.init.normal_(block.mlp.fc2.weight, std=proj_std)
            for linear in (block.attn.qkv, block.attn.proj, block.mlp.fc1, block.mlp.fc2):
                if linear.bias is not None:
                    nn.init.zeros_(linear.bias)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def _check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.ndim != 2:
            raise ValueError(f"expected token ids [B, L], got shape {tuple(tokens.shape)}")
        if tokens.shape[1] > self.context_length:
            raise ValueError(f"{tokens.shape[1]} tokens exceed the context length {self.context_length}")

    def forward_features(self, tokens: torch.Tensor, context: Context | None = None) -> torch.Tensor:
        """tokens [B, L] -> per-token features after the final LN [B, L, width].

        ``context``: image tokens [B, N, C_image] for the fused blocks (None: the unfused tower).
        """
        self._check_tokens(tokens)
        return self.encode_embeddings(self.token_embedding(tokens), context)

    def encode_embeddings(self, x: torch.Tensor, context: Context | None = None) -> torch.Tensor:
        """Input embeddings [B, L, width] (token embeddings, or learned context vectors in their
        place: prompt tuning) -> per-token features after the final LN [B, L, width]."""
        x = x + self.positional_embedding[: x.shape[1]]
        for block in self.blocks:
            extra = (context,) if context is not None and isinstance(block, FusedTransformerBlock) else ()
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, True, *extra, use_reentrant=False)
            else:
                x = block(x, True, *extra)
        return self.norm(x)

    def context(self, tokens: torch.Tensor) -> Context:
        """tokens [B, L] -> the caption as a fusion context: features [B, L', width] up to the batch's
        last end-of-text token, mask [B, L'] True up to each row's own end-of-text token."""
        self._check_tokens(tokens)
        eot = tokens.argmax(dim=-1)  # (B,)
        x = self.forward_features(tokens[:, : trimmed_length(eot, tokens.shape[1])])
        mask = torch.arange(x.shape[1], device=x.device)[None] <= eot[:, None]
        return Context(x, mask)

    def forward(self, tokens: torch.Tensor, context: Context | None = None) -> torch.Tensor:
        """tokens [B, L] -> [B, width] feature at the end-of-text (largest id) position.

        The columns after the batch's last end-of-text token are dropped first: under the causal
        mask a position only attends to the ones before it, so the pooled feature is unchanged,
        while captions and prompts fill 10-20 of the 77 positions (3-5x less text compute).
        """
        self._check_tokens(tokens)  # before trimming, which would hide a too long input
        eot = tokens.argmax(dim=-1)  # (B,)
        x = self.forward_features(tokens[:, : trimmed_length(eot, tokens.shape[1])], context)
        return x[torch.arange(x.shape[0], device=x.device), eot]


def trimmed_length(eot: torch.Tensor, length: int, multiple: int = 8) -> int:
    """Columns to keep for end-of-text positions ``eot`` [B]: max + 1, rounded up to ``multiple``.

    Rounding keeps the number of distinct shapes small (torch.compile caches, GEMM tiles). Reading
    the maximum is one host-device sync per text batch.
    """
    if eot.numel() == 0:
        return length
    keep = int(eot.max()) + 1
    return min(length, -(-keep // multiple) * multiple)
