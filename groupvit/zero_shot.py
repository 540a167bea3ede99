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
5. optionally on sliding windows (:func:`average_windows`).

``predict`` returns the dense scores [B, K+1, H, W]; ``predict_labels`` gives the same labels from
the few channels that can win (background and each image's top-k classes), so its memory does not
grow with K.

The pure functions live in :mod:`groupvit.zero_shot_functional` and
:mod:`groupvit.sliding_window`; they are re-exported here, next to the stateful
:class:`ZeroShotSegmenter` that composes them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn

from groupvit.errors import InputError
from groupvit.prompts import PromptSet, check_prompts
from groupvit.sliding_window import Box, average_windows, pair, resize_scores, slide_inference, window_grid
from groupvit.templates import get_templates
from groupvit.zero_shot_functional import (
    active_channels,
    background_channel,
    build_class_embeddings,
    gather_scores,
    group_class_affinity,
    group_scores,
    group_to_pixel_map,
    pixel_group_ids,
    resize_group_ids,
    scores_from_features,
    stage_group_maps,
)

if TYPE_CHECKING:
    from groupvit.models.groupvit import SegmentationFeatures
    from groupvit.preprocess import ImageInput

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
    "group_scores",
    "pixel_group_ids",
    "gather_scores",
    "active_channels",
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

    The class list and the templates are fixed at construction (they define the cached
    embeddings): for another vocabulary build another segmenter on the same model.

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
        prompts: tuned prompts (:class:`groupvit.prompts.PromptSet` or its ``.safetensors`` file)
            whose class embeddings replace the templates' (:mod:`groupvit.prompt_tuning`); they
            must have been tuned on this model for these ``class_names``, else an :class:`InputError`.
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
        prompts: PromptSet | str | Path | None = None,
    ) -> None:
        if not 0.0 <= bg_thresh <= 1.0:
            raise InputError(f"bg_thresh must be in [0, 1], got {bg_thresh}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"top_k must be a positive int, got {top_k!r}")
        if mode not in ("whole", "slide"):
            raise InputError(f"mode must be 'whole' or 'slide', got {mode!r}")
        self.window, self.stride = pair(window, "window"), pair(stride, "stride")
        if self.stride[0] > self.window[0] or self.stride[1] > self.window[1]:
            raise InputError(
                f"stride {self.stride} must not exceed window {self.window}: pixels would be skipped"
            )
        self.model = model
        self._class_names = _check_class_names(class_names)
        if background and any(name.strip().lower() == "background" for name in self._class_names):
            # Channel 0 already is background; a "background" text class would shift every label by one.
            raise InputError(
                "class_names contains 'background' while background=True adds it as channel 0; "
                "pass the foreground classes only (e.g. VOC_CLASSES[1:])"
            )
        self._templates = tuple(get_templates(templates))
        self.background, self.bg_thresh, self.top_k, self.mode = background, float(bg_thresh), top_k, mode
        self._tokenizer = tokenizer
        self._cache: tuple[tuple, Tensor] | None = None
        self._prompts = None if prompts is None else check_prompts(prompts, model, self._class_names)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The K foreground class names (read-only: the cached embeddings belong to them)."""
        return self._class_names

    @class_names.setter
    def class_names(self, value: Sequence[str]) -> None:
        raise AttributeError(
            "ZeroShotSegmenter.class_names is fixed (its text embeddings are cached): "
            "build a new ZeroShotSegmenter(model, class_names, ...) for another class list"
        )

    @property
    def templates(self) -> tuple[str, ...]:
        """The prompt templates (read-only, like :attr:`class_names`)."""
        return self._templates

    @templates.setter
    def templates(self, value: Sequence[str]) -> None:
        raise AttributeError(
            "ZeroShotSegmenter.templates is fixed (its text embeddings are cached): "
            "build a new ZeroShotSegmenter(model, class_names, templates=...) for other templates"
        )

    @property
    def num_classes(self) -> int:
        """Number of score channels C (K, plus one with background)."""
        return len(self._class_names) + int(self.background)

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
        ``load_state_dict``). With ``prompts``: their tuned embeddings.
        """
        device, dtype = _device_dtype(self.model)
        if self._prompts is not None:
            return self._prompts.class_embeddings.to(device=device, dtype=dtype)
        key = (device, dtype, tuple((id(p), _version(p)) for p in self.model.parameters()))
        if self._cache is None or self._cache[0] != key:
            embeds = build_class_embeddings(
                self.model, self.tokenizer, self._class_names, self._templates, device
            )
            self._cache = (key, embeds.to(dtype))
        return self._cache[1]

    def reset_cache(self) -> None:
        """Forget the cached class embeddings (they are rebuilt on the next call)."""
        self._cache = None

    @torch.no_grad()
    def predict(self, images: Tensor) -> SegmentationResult:
        """Segment a batch of images [B, 3, H, W] (resized and ImageNet-normalised).

        An empty batch (B = 0) gives empty results of the same layout, as torch ops do, so that
        callers need no special case for it.

        Returns:
            ``SegmentationResult(scores [B, C, H, W], labels [B, H, W])`` at the input size;
            resize ``scores`` to the original image size with :func:`resize_scores` before the
            argmax when the input was resized. The dense scores take B * C * H * W floats (6 GB
            for one 448x672 image and 5,000 classes): :meth:`predict_labels` needs only the labels.
        """
        images = self._prepare(images)
        size = (images.shape[-2], images.shape[-1])
        if images.shape[0] == 0:
            scores = images.new_zeros(0, self.num_classes, *size)
            return SegmentationResult(scores=scores, labels=scores.argmax(dim=1))
        scores = self._assemble(self._passes(images), size, channels=None)
        return SegmentationResult(scores=scores, labels=scores.argmax(dim=1))

    @torch.no_grad()
    def predict_image(self, image: ImageInput) -> SegmentationResult:
        """Segment one image as a user has it: a path, a PIL image or an ``HxWx3`` uint8 array.

        The image is resized to the preset's evaluation short side (``model.config.inference``)
        and normalised (:class:`~groupvit.preprocess.EvalTransform`), segmented with
        :meth:`predict`, and the scores are resized back.

        Returns:
            ``SegmentationResult(scores [C, H, W], labels [H, W])`` at the image's own size.
        """
        from groupvit.preprocess import EvalTransform, load_image

        rgb = load_image(image)
        pixels = EvalTransform(self.model.config.inference.short_side)(rgb)[None]
        scores = resize_scores(self.predict(pixels).scores, (rgb.height, rgb.width))[0]
        return SegmentationResult(scores=scores, labels=scores.argmax(dim=0))

    @torch.no_grad()
    def predict_labels(self, images: Tensor, output_size: tuple[int, int] | None = None) -> Tensor:
        """Labels of a batch [B, 3, H, W] without the dense [B, C, H, W] scores.

        Only the channels that can be non-zero are scored (:func:`active_channels`: background
        and each image's top-k classes, over every window), so memory grows with
        1 + B * windows * top_k channels instead of with the number of classes.

        Exact: at the input size the labels equal ``predict(images).labels`` bit for bit (whole
        and slide mode: the kept channels hold the same values, the others are exactly 0 and
        cannot win the argmax). With ``output_size`` the kept channels are resized bilinearly
        as :func:`resize_scores` resizes the dense scores; the labels are those of
        ``resize_scores(predict(images).scores, output_size).argmax(1)`` except where two
        classes tie within float rounding (the CPU kernel may round a channel differently by
        one ulp depending on how many channels it is given).

        Args:
            images: [B, 3, H, W], resized and ImageNet-normalised; B = 0 gives [0, *size].
            output_size: (H0, W0) to resize the scores to before the argmax (the original image
                size); None keeps (H, W).

        Returns:
            LongTensor [B, H0, W0] of channel ids (0 = background when ``background``).
        """
        images = self._prepare(images)
        size = (images.shape[-2], images.shape[-1])
        out_size = size if output_size is None else pair(output_size, "output_size")
        if images.shape[0] == 0:
            return torch.zeros(0, *out_size, dtype=torch.long, device=images.device)
        passes = self._passes(images)
        channels = active_channels([rows for _, rows, _ in passes])
        scores = resize_scores(self._assemble(passes, size, channels), out_size)
        return channels[scores.argmax(dim=1)]

    @torch.no_grad()
    def group_maps(self, images: Tensor) -> tuple[Tensor, ...]:
        """Hard group id per pixel for every grouping stage (whole image, no sliding).

        Stage s uses the product of the soft assignments of stages 1..s. An empty batch gives
        empty maps (the model runs on one blank image to know its stages).

        Returns:
            tuple over stages of LongTensor [B, H, W] with values in [0, G_s).
        """
        images = self._prepare(images)
        batch = images.shape[0]
        features = self.model.forward_segmentation(
            images if batch else images.new_zeros(1, *images.shape[1:])
        )
        size = (images.shape[-2], images.shape[-1])
        return tuple(
            resize_group_ids(group_map, features.grid_size, size)[:batch]
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
        return gather_scores(self._group_scores(features), pixel_group_ids(features, size))

    def _group_scores(self, features: SegmentationFeatures) -> Tensor:
        """Score row [B, G, C] of every final group of one forward pass."""
        return group_scores(
            features,
            self.class_embeddings,
            self.model.logit_scale_value(),
            background=self.background,
            bg_thresh=self.bg_thresh,
            top_k=self.top_k,
        )

    def _passes(self, images: Tensor) -> list[tuple[Box, Tensor, Tensor]]:
        """One forward pass per window (the whole image in whole mode), kept small:
        ``(box, rows [B, G, C], group_ids [B, h, w])``, so the channels are chosen after all passes."""
        height, width = images.shape[-2:]
        boxes = (
            [(0, height, 0, width)]
            if self.mode == "whole"
            else window_grid((height, width), self.window, self.stride)
        )
        passes = []
        for y0, y1, x0, x1 in boxes:
            features = self.model.forward_segmentation(images[:, :, y0:y1, x0:x1])
            group_ids = pixel_group_ids(features, (y1 - y0, x1 - x0))
            passes.append(((y0, y1, x0, x1), self._group_scores(features), group_ids))
        return passes

    def _assemble(
        self, passes: list[tuple[Box, Tensor, Tensor]], size: tuple[int, int], channels: Tensor | None
    ) -> Tensor:
        """Score maps [B, M, H, W] of ``channels`` (all C when None) from the passes; sliding
        windows are averaged where they overlap, one window's maps alive at a time."""
        if self.mode == "whole":
            ((_, rows, group_ids),) = passes
            return gather_scores(rows, group_ids, channels)
        return average_windows(
            ((box, gather_scores(rows, group_ids, channels)) for box, rows, group_ids in passes), size
        )

    def _prepare(self, images: Tensor) -> Tensor:
        return prepare_images(images, self.model, "ZeroShotSegmenter")

    def __repr__(self) -> str:
        return (
            f"ZeroShotSegmenter(num_classes={len(self._class_names)}, templates={len(self._templates)}, "
            f"background={self.background}, bg_thresh={self.bg_thresh}, top_k={self.top_k}, mode={self.mode!r}, "
            f"window={self.window}, stride={self.stride})"
        )


def prepare_images(images: Tensor, model: nn.Module, who: str) -> Tensor:
    """Check a batch [B, 3, H, W] of normalised images and move it to the model's device and dtype.

    Not a float 4-D tensor with 3 channels, or NaN / infinite values (they would still get labels,
    argmax of NaN scores): an :class:`InputError` naming the images. A model in training mode: a
    warning naming ``who``.
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise InputError(f"images must be a float tensor [B, 3, H, W], got {shape}")
    if not images.is_floating_point():
        raise InputError(f"images must be float (ImageNet-normalised), got {images.dtype}")
    bad = (~torch.isfinite(images).flatten(1).all(dim=1)).nonzero().flatten().tolist()
    if bad:
        raise InputError(
            f"images {bad} of the batch of {images.shape[0]} hold NaN or infinite values: "
            "check the image loading and normalisation"
        )
    if getattr(model, "training", False):
        warnings.warn(f"{who}: the model is in training mode; call model.eval()", stacklevel=4)
    device, dtype = _device_dtype(model)
    return images.to(device=device, dtype=dtype)


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
        raise InputError("class_names must not be empty: pass at least one class name")
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"class name at index {index} is empty or not a string: {name!r}")
    # Names the tokenizer cannot tell apart (case, spacing) would give identical embeddings, and
    # the argmax would never pick the second of two equal channels.
    seen: dict[str, str] = {}
    duplicates = []
    for name in names:
        key = " ".join(name.lower().split())
        if key in seen:
            duplicates.append(f"{seen[key]!r} / {name!r}")
        seen.setdefault(key, name)
    if duplicates:
        raise InputError(
            f"duplicate class names: {', '.join(duplicates)} (the text encoder ignores case and spacing); "
            "keep one of each"
        )
    return names
