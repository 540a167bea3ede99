"""Evaluation-time image input: what a user hands the toolkit -> the model's normalised tensor.

One path for the API, the command-line tools and the app: :func:`load_image` turns a path, a PIL
image or an ``HxWx3`` uint8 array into an RGB PIL image (EXIF orientation applied, 16-bit and
palette images converted by value, a truncated file refused with the file's name), and
:class:`EvalTransform` resizes it to the preset's evaluation short side and normalises it with
ImageNet statistics, as the paper's test pipeline does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from groupvit.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from groupvit.errors import InputError

__all__ = [
    "DECODE_ERRORS",
    "IMAGE_SUFFIXES",
    "MAX_WHOLE_TOKENS",
    "collect_images",
    "EvalTransform",
    "ImageInput",
    "load_image",
    "resized_size",
    "to_rgb",
    "whole_image_side",
]

ImageInput = str | Path | Image.Image | np.ndarray


# What PIL raises for a file it cannot decode (SyntaxError and EOFError come from some plugins).
DECODE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    Image.DecompressionBombError,
)
# Patch tokens of one whole-image forward pass (the groups panel, --mode whole). Attention makes its
# cost quadratic in the tokens: on one CPU thread groupvit_s takes 0.7 s at 784 tokens (448 x 448),
# 5 s at 3,136 and 16 s at 6,272, so the 62,720 tokens of a 4000 x 50 image at short side 448 would
# take about half an hour. 4,096 keeps every picture up to 5:1 at 448 px at full size.
MAX_WHOLE_TOKENS = 4096
_DEEP_GREY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


def load_image(image: ImageInput) -> Image.Image:
    """RGB PIL image from a path, a PIL image or an ``[H, W, 3]`` / ``[H, W]`` uint8 array.

    A file is decoded completely here (PIL's default ``LOAD_TRUNCATED_IMAGES=False``), so a
    truncated or corrupt file is an :class:`InputError` naming it, not a failure later in the
    pipeline; its EXIF orientation is applied. Other modes are converted by :func:`to_rgb`.
    """
    if isinstance(image, np.ndarray):
        return _from_array(image)
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if not isinstance(image, (str, Path)):
        raise InputError(
            f"an image must be a path, a PIL image or an HxWx3 uint8 array, got {type(image).__name__}"
        )
    path = Path(image)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    try:
        with Image.open(path) as opened:
            opened.load()
            return to_rgb(ImageOps.exif_transpose(opened))
    except DECODE_ERRORS as e:
        raise InputError(f"cannot read image {path}: {str(e) or type(e).__name__}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB.

    16-bit greyscale is scaled by its range (0..65535 -> 0..255; 32-bit integer and float images by
    their own min..max unless they fit 0..65535 / 0..1) where PIL's ``convert`` would clip it to white;
    transparent pixels (RGBA, LA, palette with transparency) are composited over white.
    """
    if image.mode in _DEEP_GREY_MODES:
        values = np.asarray(image, dtype=np.float64)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if image.mode == "F" and 0.0 <= low and high <= 1.0:
            low, high = 0.0, 1.0
        elif image.mode != "F" and 0.0 <= low and high <= 65535.0:
            low, high = 0.0, 65535.0
        grey = (values - low) * (255.0 / max(high - low, 1e-12))
        return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode in ("LA", "La", "PA", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
    return image.convert("RGB")


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        raise InputError(
            f"an image array must be uint8 [H, W, 3] (RGB) or [H, W], got {array.dtype} {list(array.shape)}"
        )
    if min(array.shape[:2]) < 1:
        raise InputError(f"the image array is empty: shape {list(array.shape)}")
    return Image.fromarray(np.ascontiguousarray(array)).convert("RGB")


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm"})


def collect_images(paths: Sequence[Path]) -> list[Path]:
    """Files as given, plus the image files directly inside each folder (sorted); a missing path or
    a folder without images is an :class:`InputError`."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not inside:
                raise InputError(f"no images in folder {path}")
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"image not found: {path}")
    return found


def resized_size(size: tuple[int, int], short_side: int) -> tuple[int, int]:
    """(H, W) scaled so that the short side is ``short_side`` (aspect ratio kept)."""
    height, width = size
    scale = short_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def whole_image_side(
    size: tuple[int, int], short_side: int, patch: int, max_tokens: int = MAX_WHOLE_TOKENS
) -> int:
    """The largest short side <= ``short_side`` at which an image of ``size`` (H, W) has at most
    ``max_tokens`` patch tokens; 0 when even one patch row holds more."""

    def tokens(side: int) -> int:
        height, width = resized_size(size, side)
        return (height // patch) * (width // patch)

    if tokens(short_side) <= max_tokens:
        return short_side
    side = min(short_side, int(short_side * math.sqrt(max_tokens / tokens(short_side))) + patch)
    while side >= patch and tokens(side) > max_tokens:
        side -= 1
    return side if side >= patch else 0


class EvalTransform:
    """PIL image / array / path -> ``[3, h, w]`` float tensor, ImageNet-normalised, short side
    ``short_side`` (bilinear, antialiased when shrinking; aspect ratio kept).

    ``short_side`` is the preset's ``config.inference.short_side`` (448 for GroupViT-S).
    """

    def __init__(self, short_side: int) -> None:
        if short_side < 1:
            raise InputError(f"short_side must be a positive number of pixels, got {short_side}")
        self.short_side = int(short_side)
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __call__(self, image: ImageInput) -> torch.Tensor:
        rgb = load_image(image)
        pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        size = resized_size((rgb.height, rgb.width), self.short_side)
        shrink = self.short_side < min(rgb.height, rgb.width)
        pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=shrink)
        return (pixels[0] - self._mean) / self._std

    def __repr__(self) -> str:
        return f"EvalTransform(short_side={self.short_side})"
