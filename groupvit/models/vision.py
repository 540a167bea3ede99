"""GroupViT vision tower: patch embed -> stages of (transformer blocks + grouping block) -> LN."""

from __future__ import annotations

from typing import NamedTuple

import torch
from timm.layers import trunc_normal_
from torch import nn
from torch.utils.checkpoint import checkpoint

from groupvit.config import VisionConfig
from groupvit.layers import (
    ConvStem,
    GroupingBlock,
    MixerMlp,
    PatchEmbed,
    TransformerBlock,
    resample_pos_embed,
)
from groupvit.layers.fusion import Context, FusedTransformerBlock


class VisionFeatures(NamedTuple):
    """Output of :meth:`GroupViTVisionTower.forward_features`."""

    tokens: torch.Tensor  # [B, G_last, C] final segment tokens after the final LayerNorm
    assignments: tuple[torch.Tensor, ...]  # per grouping stage, soft assignment [B, G_s, N_s]
    grid_size: tuple[int, int]  # (h, w) patch grid of the input


class GroupProjector(nn.Module):
    """LN + token-mixing MLP that maps the previous stage's group tokens onto this stage's ones."""

    def __init__(self, dim: int, num_prev_tokens: int, hidden: int, num_tokens: int, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.mlp = MixerMlp(num_prev_tokens, hidden, num_tokens)

    def forward(self, prev_group_tokens: torch.Tensor) -> torch.Tensor:
        """[B, S_prev, C] -> [B, S, C]."""
        return self.mlp(self.norm(prev_group_tokens))


class GroupingStage(nn.Module):
    """Transformer blocks over concat(image tokens, group tokens), then an optional grouping block."""

    def __init__(
        self,
        cfg: VisionConfig,
        depth: int,
        num_heads: int,
        num_group_tokens: int,
        num_output_groups: int,
        num_prev_group_tokens: int,
        drop_path: list[float],
        fusion_layers: int = 0,
        context_dim: int = 0,
        relative_output: bool = False,
    ) -> None:
        super().__init__()
        dim = cfg.width
        self.num_group_tokens = num_group_tokens
        self.grad_checkpointing = False
        first_fused = depth - min(fusion_layers, depth)
        self.blocks = nn.ModuleList(
            FusedTransformerBlock(
                dim,
                num_heads,
                context_dim,
                cfg.layer_norm_eps,
                relative_output=relative_output,
                mlp_ratio=cfg.mlp_ratio,
                qkv_bias=cfg.qkv_bias,
                drop_path=dp,
            )
            if i >= first_fused
            else TransformerBlock(dim, num_heads, cfg.mlp_ratio, cfg.qkv_bias, dp, eps=cfg.layer_norm_eps)
            for i, dp in enumerate(drop_path)
        )
        self.group_token: nn.Parameter | None = None
        self.grouping: GroupingBlock | None = None
        self.group_projector: GroupProjector | None = None
        if num_group_tokens > 0:
            self.group_token = nn.Parameter(torch.zeros(1, num_group_tokens, dim))
            self.grouping = GroupingBlock(
                dim,
                num_heads,
                num_group_tokens,
                num_output_groups,
                token_mlp_ratio=cfg.token_mlp_ratio,
                mlp_ratio=cfg.mlp_ratio,
                qkv_bias=cfg.qkv_bias,
                assign_eps=cfg.assign_eps,
                tau=cfg.gumbel_tau,
                hard=cfg.hard_assignment,
                query_residual=cfg.group_query_residual,
                eps=cfg.layer_norm_eps,
            )
            if num_prev_group_tokens > 0:
                hidden = int(dim * cfg.token_mlp_ratio)
                self.group_projector = GroupProjector(
                    dim, num_prev_group_tokens, hidden, num_group_tokens, cfg.layer_norm_eps
                )

    def forward(
        self, x: torch.Tensor, prev_group_tokens: torch.Tensor | None, context: Context | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """x [B, N, C] -> (tokens [B, G or N, C], this stage's group tokens [B, S, C], soft [B, G, N]).

        With a ``context`` (text tokens) the fused blocks let image and group tokens attend to it.
        """
        group_tokens = None
        if self.group_token is not None:
            group_tokens = self.group_token.expand(x.shape[0], -1, -1)
            if self.group_projector is not None and prev_group_tokens is not None:
                group_tokens = group_tokens + self.group_projector(prev_group_tokens)
            x = torch.cat([x, group_tokens], dim=1)
        for block in self.blocks:
            extra = (
                (False, context) if context is not None and isinstance(block, FusedTransformerBlock) else ()
            )
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, *extra, use_reentrant=False)
            else:
                x = block(x, *extra)
        if self.grouping is None:
            return x, None, None
        x, group_tokens = x[:, : -self.num_group_tokens], x[:, -self.num_group_tokens :]
        x, soft = self.grouping(x, group_tokens)
        return x, group_tokens, soft


class GroupViTVisionTower(nn.Module):
    """Images [B, 3, H, W] -> final segment tokens [B, G_last, C] (+ per-stage soft assignments).

    ``fusion_layers`` > 0: the last that many blocks of every grouping stage (all of a shorter stage)
    are :class:`~groupvit.layers.fusion.FusedTransformerBlock` s over ``context_dim``-wide text tokens
    (``relative_output``: :class:`~groupvit.layers.fusion.GatedCrossAttention`'s).
    """

    def __init__(
        self, cfg: VisionConfig, fusion_layers: int = 0, context_dim: int = 0, relative_output: bool = False
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.width = cfg.width
        self.patch_size = cfg.patch_size
        self.pos_grid = cfg.grid_size
        self._pos_cache: tuple[tuple, torch.Tensor] | None = None  # see position_embedding
        if cfg.stem in ("conv", "conv_pyramid"):
            self.patch_embed = ConvStem(
                cfg.patch_size,
                cfg.in_chans,
                cfg.width,
                eps=cfg.layer_norm_eps,
                extra_convs=cfg.stem_extra_convs,
                pyramid=cfg.stem == "conv_pyramid",
            )
        else:
            self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, cfg.width, eps=cfg.layer_norm_eps)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.pos_grid[0] * self.pos_grid[1], cfg.width))

        dpr = torch.linspace(0, cfg.drop_path_rate, sum(cfg.depths)).tolist()  # stochastic depth decay rule
        outputs = iter(cfg.num_output_groups)
        stages, start = [], 0
        for i, (depth, heads, num_tokens) in enumerate(zip(cfg.depths, cfg.num_heads, cfg.num_group_tokens)):
            prev_tokens = cfg.num_group_tokens[i - 1] if i > 0 else 0
            num_out = next(outputs) if num_tokens > 0 else 0
            # only grouping stages are fused: the text decides how tokens group, not the last blocks
            fused = fusion_layers if num_tokens > 0 else 0
            stages.append(
                GroupingStage(
                    cfg,
                    depth,
                    heads,
                    num_tokens,
                    num_out,
                    prev_tokens,
                    dpr[start : start + depth],
                    fused,
                    context_dim,
                    relative_output,
                )
            )
            start += depth
        self.stages = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(cfg.width, eps=cfg.layer_norm_eps)
        self.init_weights()

    def init_weights(self) -> None:
        """ViT init: trunc-normal(.02) linear weights and pos embed, zero biases, LN (1, 0).

        Group tokens are trunc-normal too, except for stages with a group projector: their tokens start
        at zero so that the stage's group tokens are initially just the projected previous groups.
        """
        self.apply(_init_vit_weights)  # the fusion gates are parameters, not modules: they stay 0
        trunc_normal_(self.pos_embed, std=0.02)
        for stage in self.stages:
            if stage.group_token is not None:
                if stage.group_projector is None:
                    trunc_normal_(stage.group_token, std=0.02)
                else:
                    nn.init.zeros_(stage.group_token)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.stages:
            stage.grad_checkpointing = enable

    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """The position embedding resampled to ``grid`` (h, w): [1, h*w, C].

        Without a gradient to compute, the last resampling is kept while the weights (their storage
        and version counter) and the grid stay the same, so inference at one size resamples once
        instead of per call (one bicubic over [C, 14, 14] per 448-px image, or per sliding window).
        """
        pos = self.pos_embed
        # a trace (TorchScript, ONNX) or a compiled graph must hold the resampling, not its result
        traced = torch.jit.is_tracing() or torch.compiler.is_compiling()
        if traced or (torch.is_grad_enabled() and pos.requires_grad):
            return resample_pos_embed(pos, grid, self.pos_grid)
        key = (tuple(grid), pos.data_ptr(), pos._version, pos.dtype, pos.device)
        if self._pos_cache is None or self._pos_cache[0] != key:
            with torch.no_grad():
                self._pos_cache = (key, resample_pos_embed(pos, grid, self.pos_grid))
        return self._pos_cache[1]

    def forward_features(self, images: torch.Tensor, context: Context | None = None) -> VisionFeatures:
        """images [B, C, H, W] (any H, W >= patch) -> :class:`VisionFeatures`.

        ``context``: text tokens [B, L, C_text] for the fused blocks; None (or no fused block) is the
        unfused tower.
        """
        x, grid = self.patch_embed(images)  # (B, h*w, C)
        x = x + self.position_embedding(grid).to(x.dtype)
        assignments = []
        group_tokens = None
        for stage in self.stages:
            x, group_tokens, soft = stage(x, group_tokens, context)
            if soft is not None:
                assignments.append(soft)
        return VisionFeatures(self.norm(x), tuple(assignments), grid)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, C, H, W] -> pooled image feature [B, C] (mean of the final segment tokens)."""
        return self.forward_features(images).tokens.mean(dim=1)


def _init_vit_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
