"""Phrase-grounding metric on data with phrase ground truth (``grounding.jsonl`` + label maps).

Each ground-truth phrase names a class of the label map. Its predicted mask is the mask of the
grounded phrase whose caption span overlaps it most (none: an empty mask, counted as a parse
miss). Phrase IoU = IoU of that mask with the pixels of the phrase's class (label 255 ignored);
phrase mIoU is the mean over all phrases, recall@0.5 the share of phrases with IoU >= 0.5.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from groupvit.errors import InputError

__all__ = [
    "GroundingRecord",
    "GroundingScores",
    "match_phrase",
    "phrase_iou",
    "read_grounding_jsonl",
    "summarise",
]


@dataclass(frozen=True)
class GroundingRecord:
    """One line of ``grounding.jsonl``: an image, its caption, the phrases with their class labels."""

    image: Path
    label_map: Path
    caption: str
    phrases: tuple[tuple[tuple[int, int], int], ...]  # ((start, end), class label)


@dataclass
class GroundingScores:
    """Per-phrase results and their summary (percentages)."""

    ious: list[float] = field(default_factory=list)  # one per ground-truth phrase
    labels: list[int] = field(default_factory=list)  # the phrase's class label
    parse_misses: int = 0  # ground-truth phrases that no predicted phrase overlapped

    def add(self, iou: float, label: int, parsed: bool) -> None:
        self.ious.append(iou)
        self.labels.append(label)
        self.parse_misses += int(not parsed)

    @property
    def phrase_miou(self) -> float:
        return 100.0 * float(np.mean(self.ious)) if self.ious else float("nan")

    @property
    def recall_at_05(self) -> float:
        return 100.0 * float(np.mean(np.asarray(self.ious) >= 0.5)) if self.ious else float("nan")


def read_grounding_jsonl(path: str | Path) -> list[GroundingRecord]:
    """Records of ``path``; image paths are relative to its folder, label maps are the image paths
    with ``img_dir`` (mmseg layout) or ``images`` (an image-text folder's) replaced by ``ann_dir``
    and the suffix ``.png``.

    A phrase's ``label`` is the value of its pixels in the label map: a class id in ground truth,
    or the phrase's own number 1..P in a per-image map (pseudo-labels); 0 = no phrase, 255 = ignore.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"grounding file not found: {path} (tools/make_synthetic_data.py writes val/grounding.jsonl)"
        )
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            image = Path(raw["image"])
            phrases = tuple((tuple(p["span"]), int(p["label"])) for p in raw["phrases"])
            caption = str(raw["caption"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise InputError(
                f'{path}:{number}: expected {{"image", "caption", "phrases": [{{"span", "label"}}]}}'
            ) from None
        label_map = Path(
            *("ann_dir" if part in ("img_dir", "images") else part for part in image.parts)
        ).with_suffix(".png")
        records.append(GroundingRecord(path.parent / image, path.parent / label_map, caption, phrases))
    if not records:
        raise InputError(f"{path} holds no record")
    return records


def match_phrase(span: tuple[int, int], predicted: Sequence[tuple[int, int]]) -> int | None:
    """Index of the predicted span that overlaps ``span`` most, or None when none overlaps."""
    overlaps = [min(span[1], e) - max(span[0], s) for s, e in predicted]
    best = int(np.argmax(overlaps)) if overlaps else None
    return best if best is not None and overlaps[best] > 0 else None


def phrase_iou(mask: np.ndarray, label_map: np.ndarray, label: int, ignore_index: int = 255) -> float:
    """IoU of a boolean ``mask`` [H, W] with ``label_map == label``, pixels at ``ignore_index`` left out."""
    valid = label_map != ignore_index
    target = (label_map == label) & valid
    pred = mask & valid
    union = np.logical_or(pred, target).sum()
    return float(np.logical_and(pred, target).sum() / union) if union else 1.0


def summarise(scores: GroundingScores, class_names: Sequence[str]) -> dict:
    """JSON-ready summary: overall figures and a row per class (phrases, mIoU, recall@0.5)."""
    rows = {}
    for label in sorted(set(scores.labels)):
        ious = np.asarray([iou for iou, lab in zip(scores.ious, scores.labels) if lab == label])
        name = class_names[label] if label < len(class_names) else str(label)
        rows[name] = {
            "phrases": int(ious.size),
            "miou": round(100.0 * float(ious.mean()), 2),
            "recall_at_0.5": round(100.0 * float((ious >= 0.5).mean()), 2),
        }
    return {
        "phrases": len(scores.ious),
        "phrase_miou": round(scores.phrase_miou, 2),
        "recall_at_0.5": round(scores.recall_at_05, 2),
        "parse_misses": scores.parse_misses,
        "per_class": rows,
    }


def format_table(summary: dict) -> Iterable[str]:
    """Markdown lines of a :func:`summarise` result."""
    yield "| class | phrases | phrase IoU | recall@0.5 |"
    yield "|---|---:|---:|---:|"
    for name, row in summary["per_class"].items():
        yield f"| {name} | {row['phrases']} | {row['miou']:.1f} | {row['recall_at_0.5']:.1f} |"
    yield (
        f"| **all** | {summary['phrases']} | **{summary['phrase_miou']:.1f}** | **{summary['recall_at_0.5']:.1f}** |"
    )
