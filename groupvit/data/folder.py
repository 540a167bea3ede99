"""Image-text pairs in a folder, indexed by ``captions.jsonl`` or a two-column CSV.

``captions.jsonl``: one ``{"image": "rel/path.jpg", "caption": "..."}`` per line.
``captions.csv``: rows ``rel/path.jpg,caption`` (csv quoting); a first row whose
first cell is ``image``, ``filepath``, ``path`` or ``file`` is a header and is skipped.
Paths are relative to the folder holding the index file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from groupvit.data.skips import SkipCounter, decode_image

__all__ = ["ImageTextFolder", "read_index"]

_CSV_HEADERS = {"image", "filepath", "path", "file", "filename"}


def read_index(index_path: str | Path) -> list[tuple[str, str]]:
    """(relative image path, caption) pairs from a ``.jsonl`` or ``.csv`` index."""
    index_path = Path(index_path)
    pairs: list[tuple[str, str]] = []
    if index_path.suffix == ".jsonl":
        with open(index_path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    pairs.append((str(row["image"]), str(row["caption"])))
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise ValueError(
                        f"{index_path}:{line_no}: expected {{'image': ..., 'caption': ...}}"
                    ) from exc
    elif index_path.suffix == ".csv":
        with open(index_path, encoding="utf-8", newline="") as f:
            for line_no, row in enumerate(csv.reader(f), 1):
                if not row:
                    continue
                if len(row) != 2:
                    raise ValueError(
                        f"{index_path}:{line_no}: expected 2 columns (image, caption), got {len(row)}"
                    )
                if line_no == 1 and row[0].strip().lower() in _CSV_HEADERS:
                    continue
                pairs.append((row[0], row[1]))
    else:
        raise ValueError(f"unknown index format {index_path.name!r}: use captions.jsonl or a .csv file")
    return pairs


class ImageTextFolder(Dataset):
    """Map-style image-text dataset: ``{"image", "text", "skipped"}`` per index.

    A map-style dataset cannot drop an index, so a corrupt or missing image makes
    ``__getitem__(i)`` return the next readable index (wrapping) and report how many
    it passed over in ``skipped``.

    Args:
        root: folder holding the index and (below it) the images.
        index: index file name inside ``root`` (``captions.jsonl`` or ``*.csv``).
        transform: PIL RGB image -> Tensor [3, S, S]; None keeps the PIL image.
        text_transform: caption str -> LongTensor [1 + K, 77] (e.g. ``CaptionTransform``);
            None keeps the caption string.
    """

    def __init__(
        self,
        root: str | Path,
        index: str = "captions.jsonl",
        transform: Callable[[Any], torch.Tensor] | None = None,
        text_transform: Callable[[str], torch.Tensor] | None = None,
    ) -> None:
        self.root = Path(root)
        self.samples = read_index(self.root / index)
        if not self.samples:
            raise ValueError(f"{self.root / index} lists no samples")
        self.transform = transform
        self.text_transform = text_transform
        self.skips = SkipCounter()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.samples)
        for offset in range(n):
            rel_path, caption = self.samples[(index + offset) % n]
            try:
                image = decode_image(str(self.root / rel_path))
            except Exception as exc:  # any decoder error: skip, count, go on
                self.skips.skip(f"{self.root / rel_path}: {type(exc).__name__}: {exc}")
                continue
            return {
                "image": self.transform(image) if self.transform else image,
                "text": self.text_transform(caption) if self.text_transform else caption,
                "skipped": self.skips.pop(),
            }
        raise RuntimeError(f"no readable image in {self.root}: all {n} samples are corrupt")
