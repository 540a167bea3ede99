"""Image side of a training sample: timm's DeiT / RandAugment pipeline at a chosen size."""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "build_eval_transform", "build_train_transform"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageTransform = Callable[[Image.Image], torch.Tensor]


def build_train_transform(
    image_size: int = 224,
    scale: tuple[float, float] = (0.08, 1.0),
    auto_augment: str | None = "rand-m9-mstd0.5-inc1",
    color_jitter: float | tuple[float, ...] = 0.4,
    grayscale_prob: float = 0.0,
    re_prob: float = 0.0,
    interpolation: str = "bicubic",
) -> ImageTransform:
    """DeiT training transform: PIL RGB -> float Tensor [3, image_size, image_size], normalised.

    RandomResizedCrop(image_size, scale) -> horizontal flip -> RandAugment
    (``auto_augment``; colour jitter is only used when it is None) -> random greyscale
    (``grayscale_prob``) -> ToTensor -> ImageNet normalisation -> random erasing with
    probability ``re_prob``.

    Args:
        image_size: output side (224 in the paper).
        scale: RandomResizedCrop area range (0.08-1.0 in the paper). Small synthetic
            images with few objects train better with a milder range such as (0.5, 1.0).
        auto_augment: timm RandAugment spec; ``None`` turns it off. RandAugment's
            invert / solarize ops destroy colour cues, which matters on synthetic data.
        color_jitter: brightness / contrast / saturation strength when RandAugment is off, or a
            4-tuple (brightness, contrast, saturation, hue) to shift hues as well.
        grayscale_prob: probability of turning a sample grey, so that a caption's colour words
            cannot always be matched from the pixels.
        re_prob: random-erasing probability (DeiT uses 0.25; off by default because
            erasing an object the caption names makes the pair wrong).
        interpolation: resampling of the crop.
    """
    from timm.data import create_transform

    transform = create_transform(
        input_size=image_size,
        is_training=True,
        scale=scale,
        hflip=0.5,
        color_jitter=tuple(color_jitter) if isinstance(color_jitter, (list, tuple)) else color_jitter,
        grayscale_prob=grayscale_prob,
        auto_augment=auto_augment,
        interpolation=interpolation,
        re_prob=re_prob,
        re_mode="pixel",
        re_count=1,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )
    _fix_posterize(transform)
    return transform


def _posterize_at_least_one_bit(img: Image.Image, bits_to_keep: int, **_: object) -> Image.Image:
    from PIL import ImageOps

    if bits_to_keep >= 8:
        return img
    return ImageOps.posterize(img, max(1, int(bits_to_keep)))


def _fix_posterize(transform: object) -> None:
    """Keep at least one bit in RandAugment's posterize.

    timm's increasing-posterize maps magnitude 10 to ``bits_to_keep = 0``, which old
    Pillow turned into a black image and Pillow >= 12 rejects with ValueError
    (magnitudes reach 10 with ``mstd0.5``), so 1 bit is the strongest posterize here.
    """
    from timm.data.auto_augment import RandAugment, posterize

    for t in getattr(transform, "transforms", []):
        if isinstance(t, RandAugment):
            for op in t.ops:
                if op.aug_fn is posterize:
                    op.aug_fn = _posterize_at_least_one_bit


def build_eval_transform(
    image_size: int = 224, crop_pct: float = 1.0, interpolation: str = "bicubic"
) -> ImageTransform:
    """Resize (short side image_size / crop_pct) -> centre crop -> Tensor [3, S, S], normalised."""
    from timm.data import create_transform

    return create_transform(
        input_size=image_size,
        is_training=False,
        crop_pct=crop_pct,
        interpolation=interpolation,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )
