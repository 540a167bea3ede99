"""Image-caption pairs with phrase masks for grounding training (``grounding.jsonl`` + label maps).

The records are the grounding metric's (:func:`groupvit.grounding_metric.read_grounding_jsonl`):
``{"image", "caption", "phrases": [{"span": [s, e], "label": v}]}`` with a label map next to the
image; a phrase's pixels are those whose label-map value is its ``label`` (a class id in ground
truth, the phrase's number 1..P in a per-image pseudo-label map; 255 = ignore). Every sample is a
``groupvit.data`` sample plus ``grounding``; :func:`collate_grounding` pads a batch's phrases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from groupvit.errors import InputError
from groupvit.grounding_metric import match_phrase, read_grounding_jsonl
from groupvit.phrases import parse_prompt
from groupvit.templates import get_templates

__all__ = ["GroundingFolder", "collate_grounding", "phrase_queries"]

_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


def phrase_queries(caption: str, spans: Sequence[tuple[int, int]]) -> list[str]:
    """The words :class:`~groupvit.grounding.PhraseGrounder` would embed for each ground-truth span:
    the query of the parsed phrase that overlaps it most (its text when none does)."""
    parsed = parse_prompt(caption)
    queries = []
    for span in spans:
        best = match_phrase(span, [p.span for p in parsed])
        queries.append(parsed[best].query if best is not None else caption[span[0] : span[1]])
    return queries


class GroundingFolder(Dataset):
    """Map-style grounding data: sample ``i`` of ``index`` (a ``grounding.jsonl``).

    Each sample: ``image`` [3, S, S] ImageNet-normalised, ``text`` LongTensor [1 + K, L] (the
    caption transform's rows, as image-text training has them), ``skipped`` 0 and ``grounding``:
    ``label_map`` LongTensor [S, S], ``phrase_text`` LongTensor [P, L] (each phrase's query in a
    template, as grounding embeds it), ``phrase_labels`` LongTensor [P] (label-map values; -1 for a
    phrase whose pixels the crop left out, so it is no target).

    Image and label map get the same geometric augmentation as image-text training's
    (``build_train_transform``): a random resized crop of ``scale`` of the area (aspect 3/4-4/3) to
    S x S (image ``interpolation``, label map nearest) and a horizontal flip with probability 0.5;
    drawn from torch's generator (seeded per data-loader worker by PyTorch). ``scale=None``: the
    whole image, no flip.

    Args:
        index: path of the ``grounding.jsonl``.
        image_size: S.
        text_transform: caption -> LongTensor [1 + K, L] (``groupvit.data.CaptionTransform``).
        tokenizer: ``list[str] -> LongTensor [N, L]`` for the phrases.
        templates: phrase template set (``"simple"``: "a photo of a {}.", grounding's default).
        scale: crop area range, or None.
        interpolation: ``"bicubic"`` or ``"bilinear"`` for the image.
    """

    def __init__(
        self,
        index: str | Path,
        image_size: int,
        text_transform: Callable[[str], torch.Tensor],
        tokenizer: Callable[[list[str]], torch.Tensor],
        templates: str | Sequence[str] = "simple",
        scale: tuple[float, float] | None = (0.08, 1.0),
        interpolation: str = "bicubic",
    ) -> None:
        if interpolation not in _RESAMPLE:
            raise InputError(f"interpolation must be one of {sorted(_RESAMPLE)}, got {interpolation!r}")
        self.records = read_grounding_jsonl(index)
        self.image_size = int(image_size)
        self.text_transform = text_transform
        self.tokenizer = tokenizer
        self.template = get_templates(templates)[0]
        self.scale = None if scale is None else (float(scale[0]), float(scale[1]))
        self.resample = _RESAMPLE[interpolation]

    def __len__(self) -> int:
        return len(self.records)

    def _crop(self, rgb: Image.Image, labels: Image.Image) -> tuple[Image.Image, Image.Image, bool]:
        """Both cropped and resized to S x S, and whether to flip them."""
        size = (self.image_size, self.image_size)
        if self.scale is None:
            return rgb.resize(size, self.resample), labels.resize(size, Image.NEAREST), False
        from torchvision.transforms import RandomResizedCrop

        top, left, h, w = RandomResizedCrop.get_params(rgb, list(self.scale), [3 / 4, 4 / 3])
        box = (left, top, left + w, top + h)
        flip = bool(torch.rand(()) < 0.5)
        return (
            rgb.resize(size, self.resample, box=box),
            labels.resize(size, Image.NEAREST, box=box),
            flip,
        )

    def __getitem__(self, idx: int) -> dict:
        record = self.records[idx]
        if not record.label_map.is_file():
            raise InputError(f"label map not found: {record.label_map} (for {record.image})")
        with Image.open(record.image) as img, Image.open(record.label_map) as ann:
            rgb, labels, flip = self._crop(img.convert("RGB"), ann)
        image = torch.from_numpy(np.asarray(rgb, np.float32) / 255.0).permute(2, 0, 1)
        label_map = torch.from_numpy(np.asarray(labels, np.int64).copy())
        if flip:
            image, label_map = image.flip(-1), label_map.flip(-1)
        spans = [span for span, _ in record.phrases]
        queries = phrase_queries(record.caption, spans) if spans else []
        present = set(label_map.unique().tolist())
        phrase_labels = [label if label in present else -1 for _, label in record.phrases]
        return {
            "image": (image - _MEAN) / _STD,
            "text": self.text_transform(record.caption),
            "skipped": 0,
            "grounding": {
                "label_map": label_map,
                "phrase_text": self.tokenizer([self.template.format(q) for q in queries])
                if queries
                else None,
                "phrase_labels": torch.tensor(phrase_labels, dtype=torch.long),
            },
        }


def collate_grounding(samples: Sequence[dict], context_length: int) -> dict[str, torch.Tensor]:
    """The samples' ``grounding`` dicts -> ``label_map`` [B, S, S], ``phrase_text`` [B, P, L],
    ``phrase_labels`` [B, P], P the batch's most phrases; padding phrases have label -1 and
    all-zero tokens."""
    most = max(len(s["phrase_labels"]) for s in samples)
    text = torch.zeros(len(samples), most, context_length, dtype=torch.long)
    labels = torch.full((len(samples), most), -1, dtype=torch.long)
    for i, s in enumerate(samples):
        n = len(s["phrase_labels"])
        if n:
            text[i, :n] = s["phrase_text"]
            labels[i, :n] = s["phrase_labels"]
    return {
        "label_map": torch.stack([s["label_map"] for s in samples]),
        "phrase_text": text,
        "phrase_labels": labels,
    }
