"""Bookkeeping for corrupt samples: skip them, count them, never stop training.

Every training sample carries ``skipped``: how many corrupt samples its stream
(one DataLoader worker) skipped since the previous sample it emitted. The count
is of samples: one unusable sample counts one, whatever number of errors it
raised. Summing ``skipped`` over the batches of all workers gives the total,
which the training loop logs.
"""

from __future__ import annotations

import io
import logging

from PIL import Image

__all__ = ["SkipCounter", "decode_image"]

logger = logging.getLogger(__name__)


def decode_image(data: bytes | str) -> Image.Image:
    """Fully decode image bytes (or a path) into an RGB PIL image; raises on any corruption."""
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(source) as image:
        image.load()  # PIL decodes lazily: force it so truncated files fail here
        return image.convert("RGB")


class SkipCounter:
    """Counts skipped samples of one stream; ``pop()`` hands the pending count to the next sample.

    Args:
        log_first: log the reason of this many skips per process at WARNING ...
        log_every: ... then one line every ``log_every`` skips.
    """

    def __init__(self, log_first: int = 10, log_every: int = 1000) -> None:
        self.pending = 0
        self.total = 0
        self.shard_errors = 0
        self.log_first = log_first
        self.log_every = log_every

    def _worth_logging(self, count: int) -> bool:
        return count <= self.log_first or count % self.log_every == 0

    def skip(self, reason: str) -> None:
        """Count one unusable sample."""
        self.pending += 1
        self.total += 1
        if self._worth_logging(self.total):
            logger.warning("skipped corrupt sample #%d: %s", self.total, reason)

    def shard_error(self, reason: str) -> None:
        """Log a shard that could not be read at all; it is no sample, so it is not counted."""
        self.shard_errors += 1
        if self._worth_logging(self.shard_errors):
            logger.warning("skipped unreadable shard #%d: %s", self.shard_errors, reason)

    def pop(self) -> int:
        pending, self.pending = self.pending, 0
        return pending

    def __getstate__(self) -> dict:
        # a copy sent to a DataLoader worker starts from zero
        return {**self.__dict__, "pending": 0, "total": 0, "shard_errors": 0}
