"""The JSON records the tools write next to their pictures (the demo's and groupvit-ground's
``<stem>.json``, the app's download): what the pictures show, as data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from groupvit.grounding import GroundingResult

__all__ = ["phrase_records", "summary_record"]


def summary_record(
    path: Path | str,
    labels: torch.Tensor,
    group_maps: Sequence[torch.Tensor],
    class_names: Sequence[str],
    short_side: int,
    mode: str,
) -> dict:
    """The class of every id, each present class's pixel share and the number of groups each
    stage uses (``labels`` [H, W], ``group_maps`` per stage [h, w])."""
    counts = torch.bincount(labels.flatten().cpu(), minlength=len(class_names))
    total = max(1, labels.numel())
    return {
        "image": str(path),
        "short_side": short_side,
        "mode": mode,
        "classes": dict(enumerate(class_names)),
        "pixel_share": {class_names[i]: round(int(n) / total, 4) for i, n in enumerate(counts.tolist()) if n},
        "groups_per_stage": [int(g.unique().numel()) for g in group_maps],
    }


def phrase_records(result: GroundingResult) -> list[dict]:
    """``{"text", "span", "score", "pixel_share"}`` of every grounded phrase, in caption order."""
    return [
        {"text": phrase.text, "span": list(phrase.span), "score": round(phrase.score, 4),
         "pixel_share": round(float(phrase.mask.float().mean()), 4)}
        for phrase in result.phrases
    ]  # fmt: skip
