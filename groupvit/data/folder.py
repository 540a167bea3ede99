"""Image-text pairs in a folder, indexed by ``captions.jsonl`` or a two-column CSV.

``captions.jsonl``: one ``{"image": "rel/path.jpg", "caption": "..."}`` per line.
``captions.csv``: rows ``rel/path.jpg,caption`` (csv quoting); a first row whose
first cell is ``image``, ``filepath``, ``path`` or ``file`` is a header and is skipped.
Paths are relative to the folder holding the index file.

Index lines that cannot be used (not JSON, not UTF-8, a missing key, a wrong column count, an
empty caption or image path) are skipped: one warning names every one with its line number, and
they count as skipped samples. An index with no usable line is an ``InputError``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch.utils.data import Dataset

from groupvit.data.skips import SkipCounter, decode_image
from groupvit.errors import InputError

__all__ = ["CaptionIndex", "ImageTextFolder", "read_index"]

logger = logging.getLogger(__name__)

_CSV_HEADERS = {"image", "filepath", "path", "file", "filename"}


class CaptionIndex(NamedTuple):
    """The usable (image, caption) pairs of an index file and the lines that were not usable."""

    pairs: list[tuple[str, str]]  # (relative image path, caption)
    bad_lines: dict[int, str]  # 1-based line number -> why it was skipped


def _pair(image: Any, caption: Any) -> tuple[str, str] | str:
    """The pair, or why it is unusable."""
    if not isinstance(image, str) or not image.strip():
        return "empty or non-string image path"
    if not isinstance(caption, str) or not caption.strip():
        return "empty caption"
    return image, caption


def _jsonl_entries(data: bytes) -> dict[int, tuple[str, str] | str]:
    entries: dict[int, tuple[str, str] | str] = {}
    for line_no, raw in enumerate(data.splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            entries[line_no] = f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            entries[line_no] = "not valid JSON"
            continue
        if not isinstance(row, dict) or "image" not in row or "caption" not in row:
            entries[line_no] = "not an object with 'image' and 'caption'"
            continue
        entries[line_no] = _pair(row["image"], row["caption"])
    return entries


def _csv_entries(data: bytes) -> dict[int, tuple[str, str] | str]:
    # surrogateescape keeps a stray byte on its row, so only that row is lost
    text = data.decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    entries: dict[int, tuple[str, str] | str] = {}
    for row in reader:
        line_no = reader.line_num  # the row's last line when a quoted cell spans lines
        if not row:
            continue
        if any("\udc80" <= ch <= "\udcff" for cell in row for ch in cell):
            entries[line_no] = "not UTF-8"
        elif len(row) != 2:
            entries[line_no] = f"expected 2 columns (image, caption), got {len(row)}"
        elif not entries and row[0].strip().lower() in _CSV_HEADERS:
            continue
        else:
            entries[line_no] = _pair(row[0], row[1])
    return entries


def _describe(index_path: Path, bad: dict[int, str], total: int) -> str:
    by_reason: dict[str, list[int]] = defaultdict(list)
    for line_no, reason in bad.items():
        by_reason[reason].append(line_no)
    parts = [
        f"{reason}: line{'s' if len(nums) > 1 else ''} {', '.join(map(str, nums))}"
        for reason, nums in by_reason.items()
    ]
    return f"{index_path}: skipped {len(bad)} of {total} lines; " + "; ".join(parts)


def read_index(index_path: str | Path) -> CaptionIndex:
    """The (relative image path, caption) pairs of a ``.jsonl`` or ``.csv`` index and its bad lines.

    Raises:
        InputError: an unknown index format.
    """
    index_path = Path(index_path)
    if index_path.suffix == ".jsonl":
        entries = _jsonl_entries(index_path.read_bytes())
    elif index_path.suffix == ".csv":
        entries = _csv_entries(index_path.read_bytes())
    else:
        raise InputError(f"unknown index format {index_path.name!r}: use captions.jsonl or a .csv file")
    pairs = [entry for entry in entries.values() if isinstance(entry, tuple)]
    bad = {line_no: entry for line_no, entry in entries.items() if isinstance(entry, str)}
    return CaptionIndex(pairs, bad)


class ImageTextFolder(Dataset):
    """Map-style image-text dataset: ``{"image", "text", "skipped"}`` per index.

    A map-style dataset cannot drop an index, so a corrupt or missing image makes
    ``__getitem__(i)`` return the next readable index (wrapping) and report how many
    it passed over in ``skipped``. The index lines skipped when the index was read count
    once per pass over the data: they are added to the ``skipped`` of sample 0 (which a
    sampler hands to exactly one rank and worker per epoch).

    Args:
        root: folder holding the index and (below it) the images.
        index: index file name inside ``root`` (``captions.jsonl`` or ``*.csv``).
        transform: PIL RGB image -> Tensor [3, S, S]; None keeps the PIL image.
        text_transform: caption str -> LongTensor [1 + K, 77] (e.g. ``CaptionTransform``);
            None keeps the caption string.

    Raises:
        InputError: the index has no usable line.
    """

    def __init__(
        self,
        root: str | Path,
        index: str = "captions.jsonl",
        transform: Callable[[Any], torch.Tensor] | None = None,
        text_transform: Callable[[str], torch.Tensor] | None = None,
    ) -> None:
        self.root = Path(root)
        index_path = self.root / index
        self.samples, bad_lines = read_index(index_path)
        total = len(self.samples) + len(bad_lines)
        if bad_lines and self.samples:
            logger.warning(_describe(index_path, bad_lines, total))
        if not self.samples:
            detail = f" ({_describe(index_path, bad_lines, total)})" if bad_lines else ""
            raise InputError(f"{index_path} lists no usable sample{detail}")
        self.index_skipped = len(bad_lines)
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
                "skipped": self.skips.pop() + (self.index_skipped if index == 0 else 0),
            }
        raise InputError(f"no readable image in {self.root}: all {n} samples are corrupt")
