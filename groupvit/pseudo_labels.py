"""Pseudo grounding labels from a teacher's phrase masks (GLIP's self-training), and their precision.

A teacher grounds every caption (:class:`groupvit.grounding.PhraseGrounder`); the phrases whose
score (their best group's affinity) reaches a threshold become pseudo ground truth in the format
of ``grounding.jsonl``: ``{"image", "caption", "phrases": [{"span", "label", "score"}]}`` with a
label map per record whose value ``v`` marks the pixels of phrase label ``v`` (1..P, phrases that
share their words share a mask and a value), 0 = no phrase, 255 = pixels of a phrase below the
threshold (not known to be free of it, so no negative either). The same reader
(:func:`groupvit.grounding_metric.read_grounding_jsonl`) serves ground truth and pseudo-labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from groupvit.grounding import GroundingResult
from groupvit.grounding_metric import GroundingRecord, match_phrase, phrase_iou

__all__ = ["IGNORE", "PseudoLabelStats", "pseudo_label", "score_pseudo_labels"]

IGNORE = 255


def pseudo_label(result: GroundingResult, threshold: float) -> tuple[np.ndarray, list[dict]]:
    """The label map [H, W] uint8 and the kept phrases of one grounded caption.

    A phrase is kept when its mask is not empty and its score is at least ``threshold``; its
    ``label`` is the number of its mask among the kept masks (1..P, in caption order).
    """
    label_map = np.zeros(tuple(result.labels.shape), np.uint8)
    phrases, values = [], {}
    for phrase in result.phrases:
        mask = phrase.mask.numpy()
        if not mask.any():
            continue
        key = mask.tobytes()  # phrases with the same words have the same mask
        if phrase.score < threshold:
            label_map[mask & (label_map == 0)] = IGNORE
            continue
        if key not in values:
            values[key] = len(values) + 1
            if values[key] >= IGNORE:
                break
            label_map[mask] = values[key]
        phrases.append({"span": list(phrase.span), "label": values[key], "score": round(phrase.score, 4)})
    return label_map, phrases


@dataclass
class PseudoLabelStats:
    """Kept pseudo-masks at one threshold against phrase ground truth (percentages)."""

    threshold: float
    truth_phrases: int  # ground-truth phrases of the scored images
    kept: int  # pseudo-masks kept (phrases of the caption with a mask above the threshold)
    matched: int  # kept masks whose phrase is a ground-truth phrase (the others name no object)
    precise: int  # kept masks with IoU >= 0.5 with their ground-truth phrase's pixels
    covered: int  # ground-truth phrases with a kept mask of IoU >= 0.5
    iou_sum: float  # sum of the kept masks' IoUs (0 for unmatched ones)
    pixels: int  # pixels of the kept masks
    true_pixels: int  # of which on their ground-truth phrase's object

    def row(self) -> dict:
        share = lambda a, b: round(100.0 * a / b, 1) if b else float("nan")  # noqa: E731
        return {
            "threshold": self.threshold,
            "kept": self.kept,
            "kept_per_truth_phrase": round(self.kept / max(self.truth_phrases, 1), 3),
            "precision_at_0.5": share(self.precise, self.kept),
            "mean_iou_kept": share(self.iou_sum, self.kept),
            "pixel_precision": share(self.true_pixels, self.pixels),
            "unmatched": self.kept - self.matched,
            "recall_at_0.5": share(self.covered, self.truth_phrases),
        }


def score_pseudo_labels(
    pseudo: Sequence[tuple[np.ndarray, list[dict]]],
    truth: Sequence[tuple[GroundingRecord, np.ndarray]],
    thresholds: Sequence[float],
) -> list[PseudoLabelStats]:
    """Precision of the pseudo-masks kept at each threshold, from one labelling at the lowest.

    Args:
        pseudo: per image (label map, phrases with ``score``) written at a threshold no higher than
            every one of ``thresholds``.
        truth: per image, in the same order, its ground-truth record and label map (class ids).
        thresholds: the thresholds to report.
    """
    stats = [PseudoLabelStats(t, 0, 0, 0, 0, 0, 0.0, 0, 0) for t in thresholds]
    for (label_map, phrases), (record, truth_map) in zip(pseudo, truth):
        truth_spans = [span for span, _ in record.phrases]
        best_iou = {i: {s.threshold: 0.0 for s in stats} for i in range(len(truth_spans))}
        for phrase in phrases:
            mask = label_map == phrase["label"]
            index = match_phrase(tuple(phrase["span"]), truth_spans)
            iou = 0.0 if index is None else phrase_iou(mask, truth_map, record.phrases[index][1])
            on_object = 0 if index is None else int((mask & (truth_map == record.phrases[index][1])).sum())
            for s in stats:
                if phrase["score"] < s.threshold:
                    continue
                s.kept += 1
                s.matched += index is not None
                s.precise += iou >= 0.5
                s.iou_sum += iou
                s.pixels += int(mask.sum())
                s.true_pixels += on_object
                if index is not None:
                    best_iou[index][s.threshold] = max(best_iou[index][s.threshold], iou)
        for s in stats:
            s.truth_phrases += len(truth_spans)
            s.covered += sum(best_iou[i][s.threshold] >= 0.5 for i in best_iou)
    return stats
