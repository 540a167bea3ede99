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
grow with K; ``predict_with_groups`` gives those labels and the per-stage group maps of the same
forward pass (what the pictures show).

Layers: the pure functions are :mod:`groupvit.zero_shot_functional` (protocol steps 1-4, the image
check) and :mod:`groupvit.sliding_window` (windows, averaging, resizing); this module holds only the
stateful :class:`ZeroShotSegmenter` over them and its result types. Import each from its module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn

from groupvit.config import RefineConfig
from groupvit.errors import InputError
from groupvit.prompts import PromptSet, check_prompts
from groupvit.refine.pamr import pamr
from groupvit.refine.soft_groups import mix_scores, pixel_group_weights
from groupvit.refine.synonyms import synonym_embeddings
from groupvit.refine.tta import View, apply_view, tta_views, undo_view, view_size
from groupvit.sliding_window import (
    Box,
    average_windows,
    check_windows,
    pair,
    resize_scores,
    window_grid,
)
from groupvit.templates import get_templates
from groupvit.zero_shot_functional import (
    active_channels,
    build_class_embeddings,
    device_dtype,
    gather_scores,
    group_scores,
    pixel_group_ids,
    prepare_images,
    resize_group_ids,
    stage_group_maps,
)

if TYPE_CHECKING:
    from groupvit.models.groupvit import SegmentationFeatures
    from groupvit.preprocess import ImageInput

__all__ = ["GroupedPrediction", "SegmentationResult", "ZeroShotSegmenter"]


class SegmentationResult(NamedTuple):
    """Output of :meth:`ZeroShotSegmenter.predict`."""

    scores: Tensor  # [B, C, H, W]; C = K + 1 with background at channel 0, else K
    labels: Tensor  # [B, H, W] argmax of scores (0 = background when background=True)


class GroupedPrediction(NamedTuple):
    """Output of :meth:`ZeroShotSegmenter.predict_with_groups`."""

    labels: Tensor  # [B, H0, W0] channel ids, as predict_labels (0 = background when background=True)
    group_maps: tuple[Tensor, ...]  # per grouping stage [B, H0, W0] hard group ids in [0, G_s)
    features: SegmentationFeatures  # the whole-image forward pass both come from (its grid size)


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
        synonyms: K lists of the texts of each class (a class file's ``name: syn1, syn2``, see
            :mod:`groupvit.class_file`), averaged into its embedding; None: each class's name.
        refine: test-time refinements (PAMR, soft groups, scales and flip); None: all off, the
            paper's protocol.
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
        synonyms: Sequence[Sequence[str]] | None = None,
        refine: RefineConfig | None = None,
        prompts: PromptSet | str | Path | None = None,
    ) -> None:
        if not 0.0 <= bg_thresh <= 1.0:
            raise InputError(f"bg_thresh must be in [0, 1], got {bg_thresh}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"top_k must be a positive int, got {top_k!r}")
        if mode not in ("whole", "slide"):
            raise InputError(f"mode must be 'whole' or 'slide', got {mode!r}")
        self.window, self.stride = check_windows(window, stride)
        self.model = model
        self._class_names = _check_class_names(class_names)
        if background and any(name.strip().lower() == "background" for name in self._class_names):
            # Channel 0 already is background; a "background" text class would shift every label by one.
            raise InputError(
                "class_names contains 'background' while background=True adds it as channel 0; "
                "pass the foreground classes only (e.g. VOC_CLASSES[1:])"
            )
        self._templates = tuple(get_templates(templates))
        self._synonyms = None if synonyms is None else _check_synonyms(synonyms, len(self._class_names))
        self.refine = RefineConfig() if refine is None else refine
        if not isinstance(self.refine, RefineConfig):
            raise TypeError(f"refine must be a groupvit.config.RefineConfig, got {type(refine).__name__}")
        self.background, self.bg_thresh, self.top_k, self.mode = background, float(bg_thresh), top_k, mode
        self._tokenizer = tokenizer
        self._cache: tuple[tuple, Tensor] | None = None
        if prompts is not None and synonyms is not None:
            # tuned prompts are the class embeddings; synonyms would be silently ignored
            raise InputError("give prompts or synonyms, not both: tuned prompts replace the class texts")
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
        device, dtype = device_dtype(self.model)
        if self._prompts is not None:
            return self._prompts.class_embeddings.to(device=device, dtype=dtype)
        key = (device, dtype, tuple((id(p), _version(p)) for p in self.model.parameters()))
        if self._cache is None or self._cache[0] != key:
            embeds = (
                build_class_embeddings(self.model, self.tokenizer, self._class_names, self._templates, device)
                if self._synonyms is None
                else synonym_embeddings(self.model, self.tokenizer, self._synonyms, self._templates, device)
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
        scores = self._refined(images, self._view_passes(images), channels=None)
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
        views = self._view_passes(images)
        channels = active_channels([rows for _, passes in views for _, rows, _ in passes])
        scores = resize_scores(self._refined(images, views, channels), out_size)
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

    @torch.no_grad()
    def predict_with_groups(
        self, images: Tensor, output_size: tuple[int, int] | None = None
    ) -> GroupedPrediction:
        """Labels and per-stage group maps of a batch [B, 3, H, W] from one whole-image forward pass.

        The labels are :meth:`predict_labels`' (bit for bit); the group maps :meth:`group_maps`'
        at ``output_size`` (each stage's soft map resized bilinearly there, then its argmax). When
        :meth:`single_pass` holds, both come from the same forward pass; with several sliding
        windows the labels come from the windows and the groups from the whole image (groups of
        windows do not compose).

        Args:
            images: [B, 3, H, W], resized and ImageNet-normalised (B >= 1).
            output_size: (H0, W0) of both outputs (the original image size); None keeps (H, W).

        Returns:
            ``GroupedPrediction(labels [B, H0, W0], group_maps tuple over stages of [B, H0, W0],
            features)``; ``features`` are the whole-image pass's (``SegmentationFeatures``).
        """
        images = self._prepare(images)
        if images.shape[0] == 0:
            raise InputError("predict_with_groups needs at least one image, got an empty batch")
        size = (images.shape[-2], images.shape[-1])
        out_size = size if output_size is None else pair(output_size, "output_size")
        features = self.model.forward_segmentation(images)
        groups = tuple(
            resize_group_ids(group_map, features.grid_size, out_size)
            for group_map in stage_group_maps(features.assignments)
        )
        if self.single_pass(size):  # the windows' one pass is this whole-image pass
            box = (0, size[0], 0, size[1])
            views = [
                (View(1.0, False), [(box, self._group_scores(features), self._pixel_groups(features, size))])
            ]
        else:  # windows or test-time views: predict_labels' own passes
            views = self._view_passes(images)
        channels = active_channels([rows for _, passes in views for _, rows, _ in passes])
        labels = channels[resize_scores(self._refined(images, views, channels), out_size).argmax(dim=1)]
        return GroupedPrediction(labels=labels, group_maps=groups, features=features)

    def single_pass(self, size: tuple[int, int]) -> bool:
        """Whether :meth:`predict` scores an image of ``size`` (H, W) with one forward pass over the
        whole image (``mode="whole"``, or a single sliding window that covers it) and no test-time
        augmentation or PAMR."""
        refine = self.refine
        if refine.scales != (1.0,) or refine.flip or refine.shifts != (0,) or refine.pamr_iterations:
            return False
        return self.mode == "whole" or len(window_grid(size, self.window, self.stride)) == 1

    @torch.no_grad()
    def score_features(self, features: SegmentationFeatures, size: tuple[int, int]) -> Tensor:
        """Scores [B, C, H, W] of ``model.forward_segmentation`` features of images of ``size`` (H, W).

        For a caller that needs the features too: when :meth:`single_pass` holds, these are
        :meth:`predict`'s scores, without a second forward pass.
        """
        return self._pixel_scores(self._group_scores(features), self._pixel_groups(features, size), None)

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

    def _pixel_groups(self, features: SegmentationFeatures, size: tuple[int, int]) -> Tensor:
        """Each pixel's group: ids [B, H, W], or with ``refine.soft_groups`` weights [B, G, H, W]."""
        if self.refine.soft_groups:
            return pixel_group_weights(features, size)
        return pixel_group_ids(features, size)

    def _pixel_scores(self, rows: Tensor, pixel_groups: Tensor, channels: Tensor | None) -> Tensor:
        """Score maps [B, M, H, W] from group rows [B, G, C] and :meth:`_pixel_groups`."""
        if self.refine.soft_groups:
            return mix_scores(rows, pixel_groups, channels)
        return gather_scores(rows, pixel_groups, channels)

    def _view_passes(self, images: Tensor) -> list[tuple[View, list[tuple[Box, Tensor, Tensor]]]]:
        """The passes of every test-time view (one identity view without augmentation)."""
        views = tta_views(self.refine.scales, self.refine.flip, self.refine.shifts)
        return [(view, self._passes(apply_view(images, view))) for view in views]

    def _refined(
        self,
        images: Tensor,
        views: list[tuple[View, list[tuple[Box, Tensor, Tensor]]]],
        channels: Tensor | None,
    ) -> Tensor:
        """Score maps [B, M, H, W] at the input size: each view's maps back on the input's pixels,
        averaged over the views, then PAMR on the input's colours (each when its option is on)."""
        size = (images.shape[-2], images.shape[-1])
        total: Tensor | None = None
        for view, passes in views:
            scores = undo_view(self._assemble(passes, view_size(size, view), channels), view, size)
            total = scores if total is None else total.add_(scores)
        if total is None:
            raise ValueError("no test-time views")
        if len(views) > 1:
            total = total.div_(len(views))
        return pamr(images, total, self.refine.pamr_iterations, self.refine.pamr_dilations)

    def _passes(self, images: Tensor) -> list[tuple[Box, Tensor, Tensor]]:
        """One forward pass per window (the whole image in whole mode), kept small:
        ``(box, rows [B, G, C], pixel groups)``, so the channels are chosen after all passes."""
        height, width = images.shape[-2:]
        boxes = (
            [(0, height, 0, width)]
            if self.mode == "whole"
            else window_grid((height, width), self.window, self.stride)
        )
        passes = []
        for y0, y1, x0, x1 in boxes:
            features = self.model.forward_segmentation(images[:, :, y0:y1, x0:x1])
            pixel_groups = self._pixel_groups(features, (y1 - y0, x1 - x0))
            passes.append(((y0, y1, x0, x1), self._group_scores(features), pixel_groups))
        return passes

    def _assemble(
        self, passes: list[tuple[Box, Tensor, Tensor]], size: tuple[int, int], channels: Tensor | None
    ) -> Tensor:
        """Score maps [B, M, H, W] of ``channels`` (all C when None) from the passes; sliding
        windows are averaged where they overlap, one window's maps alive at a time."""
        if self.mode == "whole":
            ((_, rows, pixel_groups),) = passes
            return self._pixel_scores(rows, pixel_groups, channels)
        return average_windows(
            ((box, self._pixel_scores(rows, groups, channels)) for box, rows, groups in passes), size
        )

    def _prepare(self, images: Tensor) -> Tensor:
        return prepare_images(images, self.model, "ZeroShotSegmenter")

    def __repr__(self) -> str:
        return (
            f"ZeroShotSegmenter(num_classes={len(self._class_names)}, templates={len(self._templates)}, "
            f"background={self.background}, bg_thresh={self.bg_thresh}, top_k={self.top_k}, mode={self.mode!r}, "
            f"window={self.window}, stride={self.stride}"
            + ("" if self._synonyms is None else f", synonyms={sum(map(len, self._synonyms))}")
            + ("" if self.refine.is_identity else f", refine={self.refine}")
            + ")"
        )


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


def _check_synonyms(synonyms: Sequence[Sequence[str]], num_classes: int) -> tuple[tuple[str, ...], ...]:
    """K non-empty tuples of non-blank strings, one per class."""
    if isinstance(synonyms, str) or not isinstance(synonyms, Sequence):
        raise TypeError(f"synonyms must be a list of lists of str, got {type(synonyms).__name__}")
    if len(synonyms) != num_classes:
        raise InputError(
            f"synonyms has {len(synonyms)} lists for {num_classes} class names: give one per class"
        )
    checked = []
    for index, texts in enumerate(synonyms):
        if isinstance(texts, str) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise InputError(
                f"synonyms of class {index} must be a non-empty list of non-blank str, got {texts!r}"
            )
        checked.append(tuple(texts))
    return tuple(checked)
