"""Pure functions of the zero-shot segmentation protocol (REFERENCE.md, steps 1-4) and the check of
an image batch; sliding windows are :mod:`groupvit.sliding_window`.

Each step is a function of tensors only, so it can be tested on hand-built inputs and
reused outside :class:`groupvit.zero_shot.ZeroShotSegmenter` (e.g. by the mmseg segmentor).
Shapes: B images, G groups, N patch tokens on an (h, w) grid, K classes, D embedding dim.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from groupvit.errors import InputError

if TYPE_CHECKING:
    from groupvit.models.groupvit import SegmentationFeatures

__all__ = [
    "build_class_embeddings",
    "stage_group_maps",
    "group_to_pixel_map",
    "resize_group_ids",
    "group_class_affinity",
    "background_channel",
    "group_scores",
    "pixel_group_ids",
    "gather_scores",
    "active_channels",
    "scores_from_features",
    "prepare_images",
    "device_dtype",
]


class TextEncoder(Protocol):
    """Anything with GroupViT's ``encode_text(tokens [N, L]) -> [N, D]`` (projected, unnormalised)."""

    def encode_text(self, tokens: Tensor, normalize: bool = False) -> Tensor: ...


@torch.no_grad()
def build_class_embeddings(
    model: TextEncoder,
    tokenizer: object,
    class_names: Sequence[str],
    templates: Sequence[str],
    device: torch.device | str | None = None,
    batch_size: int = 1024,
) -> Tensor:
    """Class text embeddings averaged over prompt templates (protocol step 1).

    Every ``template.format(name)`` is tokenized and encoded; the projected *unnormalised*
    embeddings of one class are averaged over its T templates and the mean is L2-normalised
    (averaging before normalising weights templates by their embedding norm, as in the paper).

    Args:
        model: text encoder (``encode_text``).
        tokenizer: callable ``list[str] -> LongTensor [N, L]``.
        class_names: K class names.
        templates: T format strings with one ``{}``.
        device: where the tokens go (the model's device); ``None`` keeps them on CPU.
        batch_size: prompts per ``encode_text`` call, to bound memory for K*T prompts.

    Returns:
        Tensor [K, D], unit rows.
    """
    prompts = [template.format(name) for name in class_names for template in templates]  # class-major
    tokens = tokenizer(prompts)  # [K*T, L]
    chunks = [model.encode_text(part.to(device)) for part in tokens.split(batch_size)]
    embeds = torch.cat(chunks).reshape(len(class_names), len(templates), -1)  # [K, T, D]
    return F.normalize(embeds.mean(dim=1), dim=-1)


def stage_group_maps(assignments: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """Pixel-to-group maps of every stage as products of the soft assignments (step 2).

    Args:
        assignments: per stage s a soft assignment [B, G_s, N_s] (softmax over groups),
            with N_1 = h * w patches and N_s = G_{s-1} for later stages.

    Returns:
        tuple over stages of Tensor [B, N_1, G_s]: ``A_1^T @ A_2^T @ ... @ A_s^T``.
    """
    maps: list[Tensor] = []
    current: Tensor | None = None
    for stage, assign in enumerate(assignments):
        transposed = assign.transpose(1, 2)  # [B, N_s, G_s]
        if current is not None and current.shape[-1] != transposed.shape[1]:
            raise ValueError(
                f"stage {stage} assigns {transposed.shape[1]} tokens but stage {stage - 1} "
                f"produced {current.shape[-1]} groups"
            )
        current = transposed if current is None else current @ transposed
        maps.append(current)
    return tuple(maps)


def _resize_group_map(group_map: Tensor, grid_size: tuple[int, int], output_size: tuple[int, int]) -> Tensor:
    """[B, h*w, G] soft map -> [B, G, H, W], bilinear, align_corners=False."""
    batch, num_tokens, num_groups = group_map.shape
    height, width = grid_size
    if num_tokens != height * width:
        raise ValueError(f"group map has {num_tokens} tokens, grid {grid_size} has {height * width}")
    grid = group_map.transpose(1, 2).reshape(batch, num_groups, height, width)
    return F.interpolate(grid, size=tuple(output_size), mode="bilinear", align_corners=False)


def group_to_pixel_map(group_map: Tensor, grid_size: tuple[int, int], output_size: tuple[int, int]) -> Tensor:
    """Hard pixel-to-group map at image resolution (step 2).

    Args:
        group_map: [B, h*w, G] soft pixel-to-group map of one stage (:func:`stage_group_maps`).
        grid_size: (h, w) patch grid of the input.
        output_size: (H, W) input image size.

    Returns:
        Tensor [B, G, H, W] one-hot over groups (same dtype as ``group_map``): the map is resized
        bilinearly (align_corners=False) and each pixel goes to its argmax group.
    """
    group_ids = resize_group_ids(group_map, grid_size, output_size)
    one_hot = F.one_hot(group_ids, num_classes=group_map.shape[-1])  # [B, H, W, G]
    return one_hot.permute(0, 3, 1, 2).to(group_map.dtype)


def group_class_affinity(
    group_embeds: Tensor,
    image_embeds: Tensor,
    class_embeds: Tensor,
    logit_scale: Tensor | float,
    top_k: int = 5,
) -> Tensor:
    """Group-to-class affinity restricted to the image-level top-k classes (step 4).

    ``A = softmax_K(s * g @ c^T)``; ``p = softmax_K(s * i @ c^T)``; ``B = softmax_K`` of the same
    group logits with every class outside the top-min(k, K) of ``p`` set to -inf; returns ``B * A``.

    Args:
        group_embeds: [B, G, D] L2-normalised group embeddings.
        image_embeds: [B, D] L2-normalised image embeddings.
        class_embeds: [K, D] L2-normalised class embeddings.
        logit_scale: scalar s (GroupViT: min(exp(logit_scale), 100)).
        top_k: number of image-level classes kept.

    Returns:
        Tensor [B, G, K]; zero outside each image's top-k classes.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    group_logits = logit_scale * group_embeds @ class_embeds.t()  # [B, G, K]
    affinity = group_logits.softmax(dim=-1)
    image_probs = (logit_scale * image_embeds @ class_embeds.t()).softmax(dim=-1)  # [B, K]
    keep_idx = image_probs.topk(min(top_k, class_embeds.shape[0]), dim=-1).indices  # [B, k]
    # a tensor source, not the scalar True: the TorchScript ONNX exporter has no bool-scalar scatter_
    keep = torch.zeros_like(image_probs, dtype=torch.bool).scatter(
        1, keep_idx, torch.ones_like(keep_idx, dtype=torch.bool)
    )
    restricted = group_logits.masked_fill(~keep[:, None, :], float("-inf")).softmax(dim=-1)
    return restricted * affinity


def background_channel(fg_scores: Tensor, affinity: Tensor, bg_thresh: float) -> Tensor:
    """Binary background score (step 5).

    A pixel is background when its best foreground score is below
    ``min(bg_thresh, max of the image's affinity B * A)``. Capping by the image's maximum
    means the pixels of the image's most confident group always stay foreground, even when
    every affinity of the image is below ``bg_thresh``.

    Args:
        fg_scores: [B, K, H, W] foreground scores (one-hot groups @ affinity).
        affinity: [B, G, K] group-class affinity of the same images.
        bg_thresh: threshold in [0, 1] (0.95 VOC / COCO-Object, 0.35 PASCAL Context).

    Returns:
        Tensor [B, 1, H, W], 1.0 for background and 0.0 elsewhere, dtype of ``fg_scores``.
    """
    thresh = affinity.flatten(1).amax(dim=1).clamp(max=bg_thresh)  # [B]
    is_bg = fg_scores.amax(dim=1, keepdim=True) < thresh[:, None, None, None]
    return is_bg.to(fg_scores.dtype)


def group_scores(
    features: SegmentationFeatures,
    class_embeds: Tensor,
    logit_scale: Tensor | float,
    background: bool = True,
    bg_thresh: float = 0.95,
    top_k: int = 5,
    min_similarity: float | None = None,
) -> Tensor:
    """Steps 3-5 per final group: the score row that every pixel of a group gets.

    One-hot groups @ affinity gives each pixel its group's row, and the background test only
    looks at that row, so the score maps are these rows gathered per pixel (:func:`gather_scores`).

    Args:
        features: ``SegmentationFeatures`` (projected unnormalised group and image embeddings).
        class_embeds: [K, D] L2-normalised class embeddings.
        logit_scale: scalar, min(exp(logit_scale), 100).
        background: prepend the background channel.
        bg_thresh: background threshold (used when ``background``).
        top_k: image-level classes kept per image.
        min_similarity: with ``background``, a group whose cosine similarity with every class is
            below it becomes background whatever the softmax says (phrase grounding's gate: a
            caption's few phrases are no closed vocabulary); None: the protocol, no gate.

    Returns:
        Tensor [B, G, C], C = K + 1 (background at channel 0) or K; a class outside an image's
        top-k is exactly 0 in every row of that image.
    """
    num_groups = features.assignments[-1].shape[1]
    group_embeds = F.normalize(features.group_embeds, dim=-1)
    if group_embeds.shape[1] != num_groups:
        raise ValueError(
            f"{group_embeds.shape[1]} group embeddings but the last assignment has {num_groups} groups"
        )
    image_embeds = F.normalize(features.image_embeds, dim=-1)
    affinity = group_class_affinity(group_embeds, image_embeds, class_embeds, logit_scale, top_k)  # [B, G, K]
    rows = affinity.to(features.assignments[-1].dtype)
    if not background:
        return rows
    group_bg = background_channel(rows.transpose(1, 2)[..., None], affinity, bg_thresh)  # [B, 1, G, 1]
    rows = torch.cat([group_bg[:, 0], rows], dim=-1)
    if min_similarity is not None:
        weak = (group_embeds @ class_embeds.t()).amax(dim=-1, keepdim=True) < min_similarity  # [B, G, 1]
        background_row = torch.zeros_like(rows[:1, :1])
        background_row[..., 0] = 1.0
        rows = torch.where(weak, background_row, rows)
    return rows


def pixel_group_ids(features: SegmentationFeatures, output_size: tuple[int, int]) -> Tensor:
    """Final-stage hard group id per pixel (step 2): LongTensor [B, H, W] at ``output_size``."""
    group_map = stage_group_maps(features.assignments)[-1]  # [B, N, G]
    return resize_group_ids(group_map, features.grid_size, output_size)


def gather_scores(rows: Tensor, group_ids: Tensor, channels: Tensor | None = None) -> Tensor:
    """Score maps from per-group rows: pixel (b, y, x) gets ``rows[b, group_ids[b, y, x]]``.

    Args:
        rows: [B, G, C] score row of every group (:func:`group_scores`).
        group_ids: LongTensor [B, H, W] group of every pixel (:func:`pixel_group_ids`).
        channels: LongTensor [M] of channels to keep (in this order); None keeps all C.

    Returns:
        Tensor [B, M, H, W] (M = C without ``channels``), copies of the rows' values, in
        channels-last memory order (so that the per-pixel ``argmax(dim=1)`` reads contiguous rows).
    """
    if channels is not None:
        rows = rows.index_select(-1, channels)
    batch, num_groups, num_channels = rows.shape
    offsets = num_groups * torch.arange(batch, device=group_ids.device)
    scores = rows.reshape(batch * num_groups, num_channels).index_select(
        0, (group_ids + offsets[:, None, None]).flatten()
    )
    return scores.view(*group_ids.shape, num_channels).permute(0, 3, 1, 2)


def active_channels(rows: Sequence[Tensor]) -> Tensor:
    """The channels that can be non-zero in score maps built from ``rows``, and channel 0.

    A channel whose column is 0 in every row is exactly 0 in the gathered maps, in their
    window averages and in their bilinear resizing, so the argmax over the returned channels
    (in ascending order) picks the same channel as the argmax over all C: a positive maximum
    lies in them, and where every score is 0 the argmax is channel 0, which is always kept.

    Args:
        rows: score rows [B, G, C] of one or more forward passes (e.g. the sliding windows).

    Returns:
        LongTensor [M], ascending, M <= C; with the top-k filter M <= 1 + (number of images
        x passes x k), whatever the number of classes.
    """
    nonzero = torch.stack([(r != 0).flatten(0, -2).any(dim=0) for r in rows]).any(dim=0)  # [C]
    nonzero[0] = True
    return nonzero.nonzero().flatten()


def scores_from_features(
    features: SegmentationFeatures,
    class_embeds: Tensor,
    logit_scale: Tensor | float,
    output_size: tuple[int, int],
    background: bool = True,
    bg_thresh: float = 0.95,
    top_k: int = 5,
) -> Tensor:
    """Steps 2-5 on the model's segmentation features of one batch: dense score maps.

    Args:
        features: ``SegmentationFeatures`` (soft assignments, projected unnormalised group and
            image embeddings, patch grid).
        class_embeds: [K, D] L2-normalised class embeddings.
        logit_scale: scalar, min(exp(logit_scale), 100).
        output_size: (H, W) of the input images.
        background: prepend the background channel.
        bg_thresh: background threshold (used when ``background``).
        top_k: image-level classes kept per image.

    Returns:
        Tensor [B, C, H, W], C = K + 1 (background at channel 0) or K, in channels-last memory
        order (so that the per-pixel ``argmax(dim=1)`` reads contiguous rows).
    """
    rows = group_scores(features, class_embeds, logit_scale, background, bg_thresh, top_k)
    return gather_scores(rows, pixel_group_ids(features, output_size))


def resize_group_ids(group_map: Tensor, grid_size: tuple[int, int], output_size: tuple[int, int]) -> Tensor:
    """Hard group id per pixel: LongTensor [B, H, W] (argmax of the resized soft map [B, h*w, G])."""
    resized = _resize_group_map(group_map, grid_size, output_size)  # [B, G, H, W]
    # argmax along a contiguous last axis: along the strided group axis it is ~20x slower on CPU
    return resized.permute(0, 2, 3, 1).contiguous().argmax(dim=-1)


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
    device, dtype = device_dtype(model)
    return images.to(device=device, dtype=dtype)


def device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of the model's first parameter (CPU float32 for a model without any)."""
    param = next(iter(model.parameters()), None)
    return (param.device, param.dtype) if param is not None else (torch.device("cpu"), torch.float32)
