"""Training loop for image-text streams."""

from __future__ import annotations

import logging

from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop
from mmseg.registry import LOOPS
from torch.utils.data import IterableDataset


class _NoReplay:
    """Iterator whose first ``count`` ``next()`` calls return None without touching the data."""

    def __init__(self, iterator, count: int) -> None:
        self.iterator, self.count = iterator, count

    def __iter__(self):
        return self

    def __next__(self):
        if self.count > 0:
            self.count -= 1
            return None
        return next(self.iterator)


@LOOPS.register_module()
class ImageTextTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` that does not replay a streamed dataset on resume.

    On ``--resume`` mmengine's loop fetches (and discards) as many batches as were
    already trained, so that a map-style dataset with ``InfiniteSampler`` goes on
    exactly where it stopped. For a webdataset stream that would decode every
    image seen so far (hours for a paper-scale run) and would not reproduce the
    shuffled stream anyway, so with an ``IterableDataset`` this loop continues with
    fresh samples instead. Arguments are those of ``IterBasedTrainLoop``.
    """

    def run(self):
        if self._iter > 0 and isinstance(self.dataloader.dataset, IterableDataset):
            print_log(
                f"Resuming at iteration {self._iter}: the image-text stream is not replayed "
                "(training continues on freshly drawn samples)",
                logger="current",
                level=logging.INFO,
            )
            self.dataloader_iterator = _NoReplay(self.dataloader_iterator, self._iter)
        return super().run()
