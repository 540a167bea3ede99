"""Zero-shot semantic segmentation with a trained GroupViT (the paper's evaluation protocol).

Pipeline for an image of size (H, W) and K class names:

1. class embeddings [K, D]: projected text embeddings averaged over prompt templates, then
   L2-normalised (:func:`build_class_embeddings`);
2. pixel -> group: the soft assignments of the grouping stages multiplied stage by stage,
   resized to (H, W) and made one-hot over the final groups (:func:`stage_group_maps`,
   :func:`group_to_pixel_map`);
3. group -> class: softmax affinities of the normalised group embeddings, restricted to the
   image-level top-k classes (:func:`group_class_affinity`);
4. scores [K, H, W] = one-hot groups @ affinity, plus a thresholded background channel
   (:func:`background_channel`);
5. optionally on sliding windows (:func:`slide_inference`).

The pure functions live in :mod:`groupvit.zero_shot_functional` and
:mod:`groupvit.sliding_window`; they are re-exported here, next to the stateful
:class:`ZeroShotSegmenter` that composes them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn

from groupvit.sliding_window import pair, resize_scores, slide_inference, window_grid
from groupvit.templates import get_templates
from groupvit.zero_shot_functional import (
    background_channel,
    build_class_embeddings,
    group_class_affinity,
    group_to_pixel_map,
    resize_group_ids,
    scores_from_features,
    stage_group_maps,
)

if TYPE_CHECKING:
    from groupvit.models.groupvit import SegmentationFeatures

__all__ = [
    "SegmentationResult",
    "ZeroShotSegmenter",
    "build_class_embeddings",
    "stage_group_maps",
    "group_to_pixel_map",
    "resize_group_ids",
    "group_class_affinity",
    "background_channel",
    "scores_from_features",
    "slide_inference",
    "resize_scores",
]


class SegmentationResult(NamedTuple):
    """Output of :meth:`ZeroShotSegmenter.predict`."""

    scores: Tensor  # [B, C, H, W]; C = K + 1 with background at channel 0, else K
    labels: Tensor  # [B, H, W] argmax of scores (0 = background when background=True)


class ZeroShotSegmenter:
    """Stateful zero-shot segmentation helper around a GroupViT model (not an ``nn.Module``).

    Holds the class list and caches its text embeddings; ``predict`` runs the paper's
    protocol on already resized, ImageNet-normalised images. Put the model in ``eval()``
    first (its projection heads hold BatchNorm).

    Args:
        model: GroupViT (``forward_segmentation``, ``encode_text``, ``logit_scale_value``).
        class_names: K foreground class names (unique, non-empty).
        tokenizer: callable ``list[str] -> LongTensor [N, 77]``; CLIP BPE :class:`Tokenizer` if None.
        templates: template set name (``"simple"``, ``"subset"``, ``"imagenet"``) or a list.
        background: add a thresholded background channel 0.
        bg_thresh: background threshold in [0, 1].
        top_k: image-level classes kept per image.
        mode: ``"whole"`` (one forward per image) or ``"slide"`` (sliding windows).
        window: sliding window size, int or (h, w).
        stride: sliding window stride, int or (h, w), at most ``window``.
    """

    def __init__(
        self,
        model: nn.Module,
        class_names: Sequence[str],
        tokenizer: Callable[[list[str]], Tensor] | None = None,
        templates: str | Sequence[str] = "simple",
        background: bool = True,
        bg_thresh: float = 0.95,
        top_k: int = 5,
        mode: str = "whole",
        window: int | tuple[int, int] = 448,
        stride: int | tuple[int, int] = 224,
    ) -> None:
        if not 0.0 <= bg_thresh <= 1.0:
            raise ValueError(f"bg_thresh must be in [0, 1], got {bg_thresh}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int, got {top_k!r}")
        if mode not in ("whole", "slide"):
            raise ValueError(f"mode must be 'whole' or 'slide', got {mode!r}")
        self.window, self.stride = pair(window, "window"), pair(stride, "stride")
        if self.stride[0] > self.window[0] or self.stride[1] > self.window[1]:
            raise ValueError(
                f"stride {self.stride} must not exceed window {self.window}: pixels would be skipped"
            )
        self.model = model
        self.class_names = _check_class_names(class_names)
        if background and any(name.strip().lower() == "background" for name in self.class_names):
            # Channel 0 already is background; a "background" text class would shift every label by one.
            raise ValueError(
                "class_names contains 'background' while background=True adds it as channel 0; "
                "pass the foreground classes only (e.g. VOC_CLASSES[1:])"
            )
        self.templates = get_templates(templates)
        self.background, self.bg_thresh, self.top_k, self.mode = background, float(bg_thresh), top_k, mode
        self._tokenizer = tokenizer
        self._cache: tuple[tuple, Tensor] | None = None

    @property
    def num_classes(self) -> int:
        """Number of score channels C (K, plus one with background)."""
        return len(self.class_names) + int(self.background)

    @property
    def tokenizer(self) -> Callable[[list[str]], Tensor]:
        if self._tokenizer is None:
            # Imported and built on first use: open_clip and the BPE vocabulary are not free to load.
            from groupvit.tokenizer import Tokenizer

            self._tokenizer = Tokenizer()
        return self._tokenizer

    @property
    def class_embeddings(self) -> Tensor:
        """Tensor [K, D] of L2-normalised class embeddings, on the model's device and dtype.

        Computed on first use and cached; recomputed when the model moves to another
        device / dtype or its parameters are modified in place (a training step, a
        ``load_state_dict``).
        """
        device, dtype = _device_dtype(self.model)
        key = (device, dtype, tuple((id(p), _version(p)) for p in self.model.parameters()))
        if self._cache is None or self._cache[0] != key:
            embeds = build_class_embeddings(
                self.model, self.tokenizer, self.class_names, self.templates, device
            )
            self._cache = (key, embeds.to(dtype))
        return self._cache[1]

    def reset_cache(self) -> None:
        """Forget the cached class embeddings (they are rebuilt on the next call)."""
        self._cache = None

    @torch.no_grad()
    def predict(self, images: Tensor) -> SegmentationResult:
        """Segment a batch of images [B, 3, H, W] (resized and ImageNet-normalised).

        Returns:
            ``SegmentationResult(scores [B, C, H, W], labels [B, H, W])`` at the input size;
            resize ``scores`` to the original image size with :func:`resize_scores` before the
            argmax when the input was resized.
        """
        images = self._prepare(images)
        if self.mode == "whole":
            scores = self._score(images)
        else:
            scores = slide_inference(self._score, images, self.window, self.stride, self.num_classes)
        return SegmentationResult(scores=scores, labels=scores.argmax(dim=1))

    @torch.no_grad()
    def group_maps(self, images: Tensor) -> tuple[Tensor, ...]:
        """Hard group id per pixel for every grouping stage (whole image, no sliding).

        Stage s uses the product of the soft assignments of stages 1..s.

        Returns:
            tuple over stages of LongTensor [B, H, W] with values in [0, G_s).
        """
        images = self._prepare(images)
        features = self.model.forward_segmentation(images)
        size = (images.shape[-2], images.shape[-1])
        return tuple(
            resize_group_ids(group_map, features.grid_size, size)
            for group_map in stage_group_maps(features.assignments)
        )

    def single_pass(self, size: tuple[int, int]) -> bool:
        """Whether :meth:`predict` scores an image of ``size`` (H, W) with one forward pass over the
        whole image (``mode="whole"``, or a single sliding window that covers it)."""
        return self.mode == "whole" or len(window_grid(size, self.window, self.stride)) == 1

    @torch.no_grad()
    def score_features(self, features: SegmentationFeatures, size: tuple[int, int]) -> Tensor:
        """Scores [B, C, H, W] of ``model.forward_segmentation`` features of images of ``size`` (H, W).

        For a caller that needs the features too: when :meth:`single_pass` holds, these are
        :meth:`predict`'s scores, without a second forward pass.
        """
        return scores_from_features(
            features,
            self.class_embeddings,
            self.model.logit_scale_value(),
            size,
            background=self.background,
            bg_thresh=self.bg_thresh,
            top_k=self.top_k,
        )

    def _score(self, images: Tensor) -> Tensor:
        """[B, 3, h, w] -> scores [B, C, h, w] from one forward pass."""
        return self.score_features(
            self.model.forward_segmentation(images), (images.shape[-2], images.shape[-1])
        )

    def _prepare(self, images: Tensor) -> Tensor:
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images must be a float tensor [B, 3, H, W], got {shape}")
        if not images.is_floating_point():
            raise ValueError(f"images must be float (ImageNet-normalised), got {images.dtype}")
        if getattr(self.model, "training", False):
            warnings.warn("ZeroShotSegmenter: the model is in training mode; call model.eval()", stacklevel=3)
        device, dtype = _device_dtype(self.model)
        return images.to(device=device, dtype=dtype)

    def __repr__(self) -> str:
        return (
            f"ZeroShotSegmenter(num_classes={len(self.class_names)}, templates={len(self.templates)}, "
            f"background={self.background}, bg_thresh={self.bg_thresh}, top_k={self.top_k}, mode={self.mode!r}, "
            f"window={self.window}, stride={self.stride})"
        )


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    param = next(iter(model.parameters()), None)
    return (param.device, param.dtype) if param is not None else (torch.device("cpu"), torch.float32)


def _version(tensor: Tensor) -> int:
    """In-place modification counter of a tensor (bumped by optimiser steps and ``copy_``)."""
    try:
        return tensor._version
    except RuntimeError:  # tensors created under torch.inference_mode() have no counter
        return 0


def _check_class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """Validate class names: a non-empty sequence of distinct, non-blank strings."""
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(f"class_names must be a list of str, got {type(class_names).__name__}")
    names = tuple(class_names)
    if not names:
        raise ValueError("class_names must not be empty")
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"class name at index {index} is empty or not a string: {name!r}")
    # Names the tokenizer cannot tell apart (case, spacing) would give identical embeddings.
    seen: dict[str, str] = {}
    duplicates = []
    for name in names:
        key = " ".join(name.lower().split())
        if key in seen:
            duplicates.append(f"{seen[key]!r} / {name!r}")
        seen.setdefault(key, name)
    if duplicates:
        raise ValueError(f"duplicate class names: {', '.join(duplicates)}")
    return names
