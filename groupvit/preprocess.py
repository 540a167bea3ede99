"""Evaluation-time image input: what a user hands the toolkit -> the model's normalised tensor.

One path for the API, the command-line tools and the app: :func:`load_image` turns a path, a PIL
image or an ``HxWx3`` uint8 array into an RGB PIL image (EXIF orientation applied, 16-bit and
palette images converted by value, a truncated file refused with the file's name), and
:class:`EvalTransform` resizes it to the preset's evaluation short side and normalises it with
ImageNet statistics, as the paper's test pipeline does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from groupvit.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from groupvit.errors import InputError

__all__ = ["EvalTransform", "ImageInput", "load_image"]

ImageInput = str | Path | Image.Image | np.ndarray


def load_image(image: ImageInput) -> Image.Image:
    """RGB PIL image from a path, a PIL image or an ``[H, W, 3]`` / ``[H, W]`` uint8 array.

    A file is decoded completely here, so a truncated or corrupt file is an :class:`InputError`
    naming it (not a failure later in the pipeline). 16-bit and 32-bit greyscale images are scaled
    by their value range to 8 bits (a plain ``convert("RGB")`` would clip them to white).
    """
    if isinstance(image, np.ndarray):
        return _from_array(image)
    if isinstance(image, Image.Image):
        return _to_rgb(image)
    if not isinstance(image, (str, Path)):
        raise InputError(
            f"an image must be a path, a PIL image or an HxWx3 uint8 array, got {type(image).__name__}"
        )
    path = Path(image)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    try:
        with Image.open(path) as opened:
            opened.load()  # decode everything now: a truncated file raises here, naming the file
            return _to_rgb(ImageOps.exif_transpose(opened))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"cannot read image {path}: {e}") from None


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


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
        image = Image.fromarray(np.round(scaled).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))  # transparent parts on white
        image = Image.alpha_composite(canvas, image)
    return image.convert("RGB")


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

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the tensor for an image of ``height`` x ``width``."""
        scale = self.short_side / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))

    def __call__(self, image: ImageInput) -> torch.Tensor:
        rgb = load_image(image)
        pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        size = self.output_size(rgb.height, rgb.width)
        shrink = size[0] < rgb.height
        pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=shrink)
        return (pixels[0] - self._mean) / self._std

    def __repr__(self) -> str:
        return f"EvalTransform(short_side={self.short_side})"
