"""What the app computes, as plain functions of plain values (no Gradio): testable without a browser.

The page (:mod:`groupvit.app.ui`) only wires widgets to these functions. Segmentation runs as
``groupvit-demo`` runs it (sliding windows of the preset's short side for the labels, one
whole-image pass for the groups, at most :data:`~groupvit.preprocess.MAX_WHOLE_TOKENS` patch
tokens), so the page, the demo's pictures and its ``<stem>.json`` agree on the same input.
Phrase grounding is :class:`~groupvit.grounding.PhraseGrounder` on one whole-image pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from groupvit.cli.models import load_model
from groupvit.cli.records import phrase_records, summary_record
from groupvit.cli.vocabulary import build_class_names
from groupvit.errors import InputError
from groupvit.grounding import PhraseGrounder
from groupvit.models.groupvit import GroupViT
from groupvit.preprocess import (
    DECODE_ERRORS,
    MAX_WHOLE_TOKENS,
    EvalTransform,
    load_image,
    resized_size,
    whole_image_side,
)
from groupvit.presets import get_model_config, list_models
from groupvit.visualization.grounding import phrase_palette
from groupvit.visualization.palette import class_palette
from groupvit.zero_shot import ZeroShotSegmenter
from groupvit.zero_shot_functional import resize_group_ids, stage_group_maps

__all__ = [
    "MAX_IMAGE_PIXELS",
    "AppModel",
    "Prediction",
    "ground",
    "load_app_model",
    "open_image",
    "segment",
    "share_rows",
    "write_downloads",
]

# Decoded size refused before decoding: 4096 x 4096. The model sees the image at its short side
# (320 px for the synthetic preset, 448 for GroupViT-S) anyway; what grows with the upload is the
# decoding, the resize and the full-size pictures (4 bytes a pixel each, several of them).
MAX_IMAGE_PIXELS = 4096 * 4096


class AppModel(NamedTuple):
    """A loaded model and what the page says about it."""

    model: GroupViT  # eval mode
    name: str  # the preset
    checkpoint: str  # where the weights came from, as given

    @property
    def synthetic(self) -> bool:
        """Trained on the procedural scenes of :mod:`groupvit.data.synthetic`, not on photos."""
        return self.name.endswith("_synthetic")

    def description(self) -> str:
        """One Markdown paragraph: the preset, its size, the checkpoint, and what it was trained on."""
        config = self.model.config
        params = sum(p.numel() for p in self.model.parameters())
        text = (
            f"**Model** `{self.name}` ({params / 1e6:.1f} M parameters, patch {config.vision.patch_size}, "
            f"inference short side {config.inference.short_side} px) from `{self.checkpoint}`."
        )
        if self.synthetic:
            text += (
                " This is a **synthetic model**: trained on drawn scenes (apples, houses, stars, trees, "
                "fish, cars, balls, flowers on textured backgrounds), it knows those shapes, not photos. "
                "Load GroupViT-S weights (`gcc_yfcc`) with `groupvit-app --checkpoint gcc_yfcc` for real images."
            )
        return text


class Prediction(NamedTuple):
    """One segmented (or grounded) image: everything the page shows and the downloads hold."""

    image: np.ndarray  # [H, W, 3] uint8 RGB, the input
    labels: torch.Tensor  # LongTensor [H, W]: an id of class_names per pixel (0 = background)
    group_maps: tuple[torch.Tensor, ...]  # per grouping stage LongTensor [h, w] of group ids
    class_names: tuple[str, ...]  # id -> name; "background" at 0
    palette: np.ndarray  # [C, 3] uint8 colour of every id
    record: dict  # the JSON download (the demo's / groupvit-ground's ``<stem>.json``)
    stem: str  # file name stem of the downloads


def load_app_model(checkpoint: str | Path, model_name: str | None = None, device: str = "cpu") -> AppModel:
    """The model of ``checkpoint`` (its preset read off the weights unless ``model_name``)."""
    if model_name is not None and model_name not in list_models():
        raise InputError(f"unknown model {model_name!r}; choose from {', '.join(list_models())}")
    try:
        model = load_model(checkpoint, model_name, device)
    except RuntimeError as e:  # load_state_dict's word for weights that do not fit the named preset
        raise InputError(f"checkpoint {checkpoint}: {str(e).splitlines()[0]}") from None
    name = model_name or next(n for n in list_models() if get_model_config(n) == model.config)
    return AppModel(model, name, _shown_path(checkpoint))


def open_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """The uploaded file as RGB; a file that is not an image, or one over ``max_pixels`` (read off its
    header, before decoding), is an :class:`InputError` naming it."""
    name = Path(path).name
    try:
        with Image.open(path) as opened:
            width, height = opened.size
    except DECODE_ERRORS as e:
        raise InputError(f"{name} is not an image PIL can read ({str(e) or type(e).__name__})") from None
    if width * height > max_pixels:
        raise InputError(
            f"{name} is {width} x {height} ({width * height / 1e6:.1f} MP); the app takes up to "
            f"{max_pixels / 1e6:.1f} MP: downscale it first"
        )
    try:
        return load_image(path)
    except InputError as e:
        raise InputError(f"{name}: {str(e).rsplit(': ', 1)[-1]}") from None


def _check_resized(image: Image.Image, short_side: int) -> None:
    """An image so elongated that at ``short_side`` it would exceed :data:`MAX_IMAGE_PIXELS`: an error."""
    height, width = resized_size((image.height, image.width), short_side)
    if height * width > MAX_IMAGE_PIXELS:
        raise InputError(
            f"a {image.width} x {image.height} image is too elongated: at the model's short side "
            f"{short_side} px it would be {width} x {height} ({height * width / 1e6:.0f} MP); crop it"
        )


def _whole_pixels(app: AppModel, image: Image.Image) -> tuple[torch.Tensor, int]:
    """The image at the largest short side (up to the preset's) that one forward pass takes."""
    config = app.model.config
    _check_resized(image, config.inference.short_side)
    side = whole_image_side(
        (image.height, image.width), config.inference.short_side, config.vision.patch_size
    )
    if side == 0:
        raise InputError(
            f"a {image.width} x {image.height} image is too elongated: one patch row holds more than "
            f"{MAX_WHOLE_TOKENS} patch tokens; crop it"
        )
    return EvalTransform(side)(image)[None].to(_device(app)), side


def segment(
    app: AppModel, image: Image.Image, vocabulary: str, bg_thresh: float, stem: str = "image"
) -> Prediction:
    """Zero-shot segmentation of ``image`` with the comma-separated class names of ``vocabulary``.

    Labels as ``groupvit-demo`` computes them (``predict_labels`` on sliding windows of the preset's
    short side, at the image's size), groups from ``group_maps`` on one whole-image pass.
    """
    if not vocabulary or not vocabulary.strip(" ,\n\t"):
        raise InputError(
            "empty vocabulary: type the class names to find, separated by commas (e.g. 'apple, car')"
        )
    class_names = build_class_names(vocabulary, None)
    short_side = app.model.config.inference.short_side
    segmenter = ZeroShotSegmenter(
        app.model,
        class_names[1:],
        bg_thresh=_unit(bg_thresh, "background threshold"),
        mode="slide",
        window=short_side,
        stride=max(1, short_side // 2),
    )
    whole, _ = _whole_pixels(app, image)
    pixels = EvalTransform(short_side)(image)[None].to(_device(app))
    labels = segmenter.predict_labels(pixels, output_size=(image.height, image.width))[0].cpu()
    group_maps = tuple(g[0].cpu() for g in segmenter.group_maps(whole))
    record = summary_record(f"{stem}.png", labels, group_maps, class_names, short_side, "slide")
    return Prediction(
        np.asarray(image),
        labels,
        group_maps,
        tuple(class_names),
        class_palette(len(class_names)),
        record,
        stem,
    )


def ground(
    app: AppModel, image: Image.Image, caption: str, bg_thresh: float, stem: str = "image"
) -> Prediction:
    """A mask for every noun phrase of ``caption`` (:meth:`PhraseGrounder.ground`); label i is phrase i.

    The groups come from a second forward pass over the same pixels (``PhraseGrounder`` returns
    none of its features).
    """
    if not caption or not caption.strip():
        raise InputError("empty caption: describe what to find, e.g. 'a red ball next to a tree'")
    pixels, side = _whole_pixels(app, image)
    grounder = PhraseGrounder(app.model, bg_thresh=_unit(bg_thresh, "background threshold"), short_side=side)
    if not grounder.phrases(caption):
        raise InputError(
            f"the caption {caption!r} has no noun phrase to ground: name things, e.g. 'a red ball'"
        )
    result = grounder.ground(image, caption)
    with torch.no_grad():
        features = app.model.forward_segmentation(pixels)
    group_maps = tuple(
        resize_group_ids(soft, features.grid_size, tuple(pixels.shape[-2:]))[0].cpu()
        for soft in stage_group_maps(features.assignments)
    )
    names = ("background", *(p.text for p in result.phrases))
    record = {"image": f"{stem}.png", "caption": caption, "phrases": phrase_records(result)}
    return Prediction(
        np.asarray(image),
        result.labels.cpu(),
        group_maps,
        names,
        phrase_palette(len(result.phrases)),
        record,
        stem,
    )


def share_rows(prediction: Prediction) -> list[tuple[str, float]]:
    """(name, share of the image's pixels) of every label present, background included, largest first."""
    counts = torch.bincount(prediction.labels.flatten(), minlength=len(prediction.class_names)).tolist()
    total = max(1, prediction.labels.numel())
    rows = [(prediction.class_names[i], n / total) for i, n in enumerate(counts) if n]
    return sorted(rows, key=lambda row: -row[1])


def write_downloads(prediction: Prediction, folder: Path) -> tuple[Path, Path]:
    """``<stem>_labels.png`` (a palette PNG whose pixel values are the label ids) and ``<stem>.json``."""
    from groupvit.visualization.render import palette_image

    folder.mkdir(parents=True, exist_ok=True)
    png, record = folder / f"{prediction.stem}_labels.png", folder / f"{prediction.stem}.json"
    palette_image(prediction.labels.numpy(), prediction.palette).save(png)
    record.write_text(json.dumps(prediction.record, indent=2) + "\n", encoding="utf-8")
    return png, record


def _shown_path(checkpoint: str | Path) -> str:
    """A local checkpoint relative to the working folder when it lies inside it (tags and URLs as given)."""
    try:
        return str(Path(checkpoint).resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(checkpoint)


def _unit(value: float, what: str) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise InputError(f"{what} must be in [0, 1], got {value}")
    return float(value)


def _device(app: AppModel) -> torch.device:
    return next(app.model.parameters()).device
