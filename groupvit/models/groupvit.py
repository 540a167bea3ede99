"""GroupViT two-tower model: grouping vision tower + CLIP text tower + MLP projection heads."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from groupvit.config import GroupViTConfig
from groupvit.layers.fusion import Context, FusedTransformerBlock
from groupvit.models.projector import ProjectionHead
from groupvit.models.text import TextTransformer
from groupvit.models.vision import GroupViTVisionTower


class GroupViTOutput(NamedTuple):
    """Output of :meth:`GroupViT.forward`."""

    image_embeds: torch.Tensor  # [B, D] L2-normalised
    text_embeds: torch.Tensor  # [B, D] L2-normalised
    logit_scale: torch.Tensor  # [] exp(logit_scale) clamped at logit_scale_max


class SegmentationFeatures(NamedTuple):
    """Output of :meth:`GroupViT.forward_segmentation`."""

    assignments: tuple[torch.Tensor, ...]  # per grouping stage soft assignment [B, G_s, N_s]; N_1 = h * w
    group_embeds: torch.Tensor  # [B, G_last, D] final group tokens -> final LN -> image projector
    image_embeds: torch.Tensor  # [B, D] projected mean of the final tokens (not normalised)
    grid_size: tuple[int, int]  # (h, w) patch grid of the input


class ImageGrouping(NamedTuple):
    """Image embedding with the grouping that produced it (for losses on the groups)."""

    image_embeds: torch.Tensor  # [B, D] projected (L2-normalised when asked)
    assignments: tuple[torch.Tensor, ...]  # per grouping stage, soft [B, G_s, N_s] (no noise)
    group_embeds: torch.Tensor | None  # [B, G_last, D] projected final groups; None unless asked


class GroupViT(nn.Module):
    """Image-text model whose image tower learns to group pixels into segments.

    Built from its parts (see :meth:`from_config` / ``groupvit.create_model``).
    """

    def __init__(
        self,
        vision: GroupViTVisionTower,
        text: TextTransformer,
        image_projector: ProjectionHead,
        text_projector: ProjectionHead,
        logit_scale_init: float = math.log(1 / 0.07),
        multi_label_logit_scale_init: float = math.log(1 / 0.07),
        logit_scale_max: float = 100.0,
    ) -> None:
        super().__init__()
        self.vision = vision
        self.text = text
        self.image_projector = image_projector
        self.text_projector = text_projector
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale_init)))
        self.multi_label_logit_scale = nn.Parameter(torch.tensor(float(multi_label_logit_scale_init)))
        self.logit_scale_max = logit_scale_max
        self.config: GroupViTConfig | None = None

    @classmethod
    def from_config(cls, cfg: GroupViTConfig) -> GroupViT:
        """Build a randomly initialised model from a :class:`GroupViTConfig`."""
        model = cls(
            vision=GroupViTVisionTower(
                cfg.vision, cfg.fusion.layers, cfg.text.width, cfg.fusion.relative_output
            ),
            text=TextTransformer(
                cfg.text, cfg.fusion.text_layers, cfg.vision.width, cfg.fusion.relative_output
            ),
            image_projector=ProjectionHead(cfg.vision.width, cfg.projection_hidden_dim, cfg.embed_dim),
            text_projector=ProjectionHead(cfg.text.width, cfg.projection_hidden_dim, cfg.embed_dim),
            logit_scale_init=cfg.logit_scale_init,
            multi_label_logit_scale_init=cfg.multi_label_logit_scale_init,
            logit_scale_max=cfg.logit_scale_max,
        )
        model.config = cfg
        return model

    @property
    def has_fusion(self) -> bool:
        """Whether the image tower has fused blocks (``config.fusion.layers`` > 0)."""
        return any(isinstance(b, FusedTransformerBlock) for s in self.vision.stages for b in s.blocks)

    def text_context(self, text: torch.Tensor | None) -> Context | None:
        """Caption token ids [B, L] -> the text tokens the fused image blocks attend to.

        None when no text is given or the image tower has no fused block: fusion off, nothing run.
        """
        return self.text.context(text) if text is not None and self.has_fusion else None

    def encode_image(
        self, images: torch.Tensor, normalize: bool = False, text: torch.Tensor | None = None
    ) -> torch.Tensor:
        """images [B, 3, H, W] -> projected image embedding [B, D].

        ``text``: token ids [B, L] of each image's caption, which the fused blocks read (fusion on);
        None is the dual encoder (fusion off).
        """
        x = self.image_projector(self.vision.forward_features(images, self.text_context(text)).tokens.mean(1))
        return F.normalize(x, dim=-1) if normalize else x

    def encode_image_with_assignments(
        self,
        images: torch.Tensor,
        normalize: bool = False,
        groups: bool = False,
        text: torch.Tensor | None = None,
    ) -> ImageGrouping:
        """images [B, 3, H, W] -> ImageGrouping(image [B, D], assignments, groups [B, G, D] or None).

        One vision forward: the same embedding as :meth:`encode_image` plus what the grouping did;
        with ``groups`` also every final group through the image projector, as zero-shot
        segmentation scores them (in training its BatchNorm then also sees the groups). ``text``:
        as for :meth:`encode_image`.
        """
        feats = self.vision.forward_features(images, self.text_context(text))
        x = self.image_projector(feats.tokens.mean(dim=1))
        g = self.image_projector(feats.tokens) if groups else None
        if normalize:
            x = F.normalize(x, dim=-1)
            g = None if g is None else F.normalize(g, dim=-1)
        return ImageGrouping(x, feats.assignments, g)

    def encode_text(
        self, tokens: torch.Tensor, normalize: bool = False, image_tokens: torch.Tensor | None = None
    ) -> torch.Tensor:
        """tokens [B, L] -> projected text embedding [B, D].

        ``image_tokens``: final image tokens [B, N, C_image] (``vision.forward_features(...).tokens``)
        that the text tower's fused blocks read (``config.fusion.text_layers``; GLIP's image-to-text
        direction); None is the dual encoder.
        """
        context = None if image_tokens is None else Context(image_tokens, None)
        x = self.text_projector(self.text(tokens, context))
        return F.normalize(x, dim=-1) if normalize else x

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> GroupViTOutput:
        """images [B, 3, H, W], tokens [B', L] -> normalised embeddings and the clamped scale."""
        return GroupViTOutput(
            self.encode_image(images, normalize=True),
            self.encode_text(tokens, normalize=True),
            self.logit_scale_value(),
        )

    def forward_segmentation(
        self, images: torch.Tensor, text: torch.Tensor | None = None
    ) -> SegmentationFeatures:
        """images [B, 3, H, W] -> per-stage soft assignments, projected group and image embeddings.

        ``text``: caption token ids [B, L] for the fused blocks (grounding); None: fusion off.
        """
        feats = self.vision.forward_features(images, self.text_context(text))
        return SegmentationFeatures(
            assignments=feats.assignments,
            group_embeds=self.image_projector(feats.tokens),
            image_embeds=self.image_projector(feats.tokens.mean(dim=1)),
            grid_size=feats.grid_size,
        )

    def logit_scale_value(self) -> torch.Tensor:
        """exp(logit_scale) clamped at ``logit_scale_max`` (0-dim)."""
        return self.logit_scale.exp().clamp(max=self.logit_scale_max)

    def multi_label_logit_scale_value(self) -> torch.Tensor:
        """exp(multi_label_logit_scale) clamped at ``logit_scale_max`` (0-dim)."""
        return self.multi_label_logit_scale.exp().clamp(max=self.logit_scale_max)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute transformer blocks in the backward pass (both towers) to save memory."""
        self.vision.set_grad_checkpointing(enable)
        self.text.set_grad_checkpointing(enable)

    def no_weight_decay(self) -> set[str]:
        """Parameters exempt from weight decay: embeddings of positions, group tokens, temperatures."""
        names = {"vision.pos_embed", "text.positional_embedding", "logit_scale", "multi_label_logit_scale"}
        names.update(n for n, _ in self.named_parameters() if n.endswith("group_token"))
        return names
