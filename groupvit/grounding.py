"""Phrase grounding: one mask per noun phrase of a free caption (GLIP's formulation, for segmentation).

GLIP scores every region against every phrase of one prompt (``S = O P^T``). Here the regions are
GroupViT's final groups: each phrase is embedded through the text tower, the groups are scored
against the phrases exactly as zero-shot segmentation scores them against class names (the
image-level top-k filter, the background threshold; :mod:`groupvit.zero_shot_functional`), and
every group goes to its best phrase when that clears the threshold, so two balls are both "a red
ball". A class-list prompt ("cat. dog. grass.") is the same computation with the items as class
names, and gives :class:`~groupvit.zero_shot.ZeroShotSegmenter`'s labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from groupvit.errors import InputError
from groupvit.phrases import NounPhrase, parse_prompt
from groupvit.preprocess import EvalTransform, ImageInput, load_image
from groupvit.sliding_window import pair, resize_scores, slide_inference
from groupvit.templates import get_templates
from groupvit.zero_shot_functional import (
    build_class_embeddings,
    gather_scores,
    group_scores,
    pixel_group_ids,
    prepare_images,
)

__all__ = ["GroundedPhrase", "GroundingResult", "PhraseGrounder"]


class GroundedPhrase(NamedTuple):
    """One phrase of the caption and where it is in the image."""

    text: str  # the phrase as written in the caption
    span: tuple[int, int]  # character offsets [start, end) into the caption
    mask: Tensor  # BoolTensor [H, W] at the image's own size; all False when no group claims it
    score: float  # the phrase's best group affinity in [0, 1] (also for an empty mask)


class GroundingResult(NamedTuple):
    """Output of :meth:`PhraseGrounder.ground`."""

    phrases: list[GroundedPhrase]  # in caption order
    labels: Tensor  # LongTensor [H, W]: 0 = background, i = phrases[i - 1]


class PhraseGrounder:
    """Ground the noun phrases of a caption in an image with a GroupViT (not an ``nn.Module``).

    Args:
        model: GroupViT in ``eval()`` mode.
        tokenizer: ``list[str] -> LongTensor [N, 77]``; CLIP BPE if None.
        templates: prompt templates for each phrase (``"simple"``: "a photo of a {}.").
        bg_thresh: a group whose best phrase scores below it is background (the zero-shot test,
            over the caption's phrases); default the preset's ``config.inference.phrase_bg_thresh``.
        top_k: phrases kept by the image-level filter (as in zero-shot segmentation).
        short_side: inference short side for images given as files / PIL / arrays; default the
            preset's ``config.inference.short_side``.
        context: also read each phrase in its caption: its embedding is the normalised sum of the
            template embedding and the causal text tower's embedding of the caption up to the
            phrase's end (the EOT token then summarises the words before the phrase, phrase last).
        mode: ``"whole"`` (one forward over the resized image) or ``"slide"`` (windows of
            ``short_side``, stride half of it; for images much larger than the evaluation size).
        min_similarity: a group whose cosine similarity with every phrase is below it is
            background, whatever the softmax over the caption's few phrases says (GLIP scores each
            phrase on its own for the same reason); default the preset's
            ``config.inference.min_similarity`` (-1: off, the zero-shot protocol).

    Phrases that share their words ("a ball ... the ball") are one query: they get the same mask
    and score, and ``labels`` uses the first of them.

    A model with fusion layers (``config.fusion.layers``) groups the image conditioned on the
    caption's tokens (its fused blocks read them; docs/fusion.md); the phrases are scored as above.
    ``fusion=False`` runs such a model as the dual encoder.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Callable[[list[str]], Tensor] | None = None,
        templates: str | Sequence[str] = "simple",
        bg_thresh: float | None = None,
        top_k: int = 5,
        short_side: int | None = None,
        context: bool = False,
        mode: str = "whole",
        min_similarity: float | None = None,
        fusion: bool = True,
    ) -> None:
        inference = model.config.inference
        self.bg_thresh = float(inference.phrase_bg_thresh if bg_thresh is None else bg_thresh)
        if not 0.0 <= self.bg_thresh <= 1.0:
            raise InputError(f"bg_thresh must be in [0, 1], got {bg_thresh}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"top_k must be a positive int, got {top_k!r}")
        if mode not in ("whole", "slide"):
            raise InputError(f"mode must be 'whole' or 'slide', got {mode!r}")
        self.model, self.top_k, self.context, self.mode = model, top_k, context, mode
        self.fusion = fusion and model.has_fusion
        self.min_similarity = float(inference.min_similarity if min_similarity is None else min_similarity)
        self.templates = get_templates(templates)
        self.transform = EvalTransform(inference.short_side if short_side is None else short_side)
        self._tokenizer = tokenizer

    @property
    def tokenizer(self) -> Callable[[list[str]], Tensor]:
        if self._tokenizer is None:
            from groupvit.tokenizer import Tokenizer

            self._tokenizer = Tokenizer()
        return self._tokenizer

    def phrases(self, caption: str) -> list[NounPhrase]:
        """The phrases :meth:`ground` will ground (class-list items or noun-phrase chunks)."""
        return parse_prompt(caption)

    @torch.no_grad()
    def ground(self, image: ImageInput | Tensor, caption: str) -> GroundingResult:
        """Masks for every phrase of ``caption`` in ``image``.

        Args:
            image: a path, a PIL image, an ``[H, W, 3]`` uint8 array (resized to ``short_side``),
                or an ImageNet-normalised float tensor ``[3, H, W]`` / ``[1, 3, H, W]`` used at its size.
            caption: a free sentence or a class list ("cat. dog. grass.").

        Returns:
            ``GroundingResult``; masks and labels at the image's own size (H, W). A caption without
            a noun phrase gives no phrases and an all-background label map.
        """
        pixels, size = self._pixels(image)
        phrases = self.phrases(caption)
        if not phrases:
            return GroundingResult([], torch.zeros(size, dtype=torch.long))
        # phrases with the same words share one query (the tokenizer lower-cases anyway)
        keys = [
            (" ".join(p.query.lower().split()), caption[: p.span[1]] if self.context else "") for p in phrases
        ]
        unique = list(dict.fromkeys(keys))  # query index u -> label u + 1
        first = {key: keys.index(key) for key in unique}
        queries = [phrases[first[key]].query for key in unique]
        caption_tokens = self.tokenizer([caption]).to(pixels.device) if self.fusion else None
        scores = self._scores(
            pixels, self._embed(queries, [prefix for _, prefix in unique]), caption_tokens
        )  # [1, U+1, h, w]
        best = scores[0, 1:].flatten(1).amax(dim=1)  # [U] the phrase's best pixel = its best group
        labels_u = resize_scores(scores, size).argmax(dim=1)[0]  # [H, W] in 0..U
        to_phrase = torch.tensor([0] + [first[key] + 1 for key in unique], device=labels_u.device)
        labels = to_phrase[labels_u].cpu()
        grounded = []
        for phrase, key in zip(phrases, keys):
            u = unique.index(key)
            mask = (labels_u == u + 1).cpu()
            grounded.append(GroundedPhrase(phrase.text, phrase.span, mask, float(best[u])))
        return GroundingResult(grounded, labels)

    def _pixels(self, image: ImageInput | Tensor) -> tuple[Tensor, tuple[int, int]]:
        """The model input [1, 3, h, w] and the size (H, W) the result is given at."""
        if isinstance(image, Tensor):
            pixels = image[None] if image.ndim == 3 else image
            if pixels.ndim == 4 and pixels.shape[0] != 1:
                raise InputError(f"ground() takes one image, got a batch of {pixels.shape[0]}")
            size = (pixels.shape[-2], pixels.shape[-1])
        else:
            rgb = load_image(image)
            pixels, size = self.transform(rgb)[None], (rgb.height, rgb.width)
        return prepare_images(pixels, self.model, "PhraseGrounder"), size

    def _embed(self, queries: list[str], prefixes: list[str]) -> Tensor:
        """[U, D] unit embeddings of the queries (read in their caption prefixes with ``context``)."""
        device = next(self.model.parameters()).device
        embeds = build_class_embeddings(self.model, self.tokenizer, queries, self.templates, device)
        if self.context:
            prefixes = self.tokenizer(prefixes).to(device)
            embeds = F.normalize(embeds + self.model.encode_text(prefixes, normalize=True), dim=-1)
        return embeds

    def _scores(self, pixels: Tensor, embeds: Tensor, caption: Tensor | None) -> Tensor:
        """Scores [1, U + 1, h, w] of the phrases, background at channel 0; ``caption`` [1, L] token
        ids for the fused blocks (None: no fusion)."""
        if self.mode == "whole":
            return self._window_scores(pixels, embeds, caption)
        side = pair(self.transform.short_side, "short_side")
        stride = pair(max(1, self.transform.short_side // 2), "stride")
        return slide_inference(
            lambda window: self._window_scores(window, embeds, caption),
            pixels,
            side,
            stride,
            embeds.shape[0] + 1,
        )

    def _window_scores(self, pixels: Tensor, embeds: Tensor, caption: Tensor | None) -> Tensor:
        """[B, 3, h, w] -> [B, U + 1, h, w]: the zero-shot protocol's group rows with the similarity
        gate, given to every pixel of the group."""
        text = None if caption is None else caption.expand(pixels.shape[0], -1)
        features = self.model.forward_segmentation(pixels, text)
        rows = group_scores(
            features,
            embeds,
            self.model.logit_scale_value(),
            bg_thresh=self.bg_thresh,
            top_k=self.top_k,
            min_similarity=self.min_similarity,
        )
        return gather_scores(rows, pixel_group_ids(features, (pixels.shape[-2], pixels.shape[-1])))

    def __repr__(self) -> str:
        return (
            f"PhraseGrounder(templates={len(self.templates)}, bg_thresh={self.bg_thresh}, top_k={self.top_k}, "
            f"short_side={self.transform.short_side}, context={self.context}, mode={self.mode!r}, "
            f"min_similarity={self.min_similarity}, fusion={self.fusion})"
        )
