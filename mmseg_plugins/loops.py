"""Training loop for image-text data."""

from __future__ import annotations

import logging
from typing import Any

from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop
from mmseg.registry import LOOPS
from torch.utils.data import IterableDataset

from mmseg_plugins.rng_state import capture_rng_state, restore_rng_state


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


class _ReplayKeepingRNG:
    """Iterator whose first ``count`` ``next()`` calls leave the global random generators as they were.

    With ``num_workers=0`` the replayed batches run their random transforms in this process; the
    generators are put back after the last of them, so batch ``count + 1`` is drawn from the state
    the resumed checkpoint restored (worker processes replay their own generators by themselves).
    """

    def __init__(self, iterator, count: int) -> None:
        self.iterator, self.count = iterator, count
        self._state: dict[str, Any] | None = None

    def __iter__(self):
        return self

    def __next__(self):
        if self.count <= 0:
            return next(self.iterator)
        if self._state is None:
            self._state = capture_rng_state()
        batch = next(self.iterator)
        self.count -= 1
        if self.count == 0:
            restore_rng_state(self._state)
            self._state = None
        return batch


@LOOPS.register_module()
class ImageTextTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` whose resume replay neither decodes a stream nor draws random numbers.

    On ``--resume`` mmengine's loop fetches (and discards) as many batches as were
    already trained, so that a map-style dataset with ``InfiniteSampler`` goes on
    exactly where it stopped. For a webdataset stream that would decode every
    image seen so far (hours for a paper-scale run) and would not reproduce the
    shuffled stream anyway, so with an ``IterableDataset`` this loop continues with
    fresh samples instead. For a map-style dataset the replay runs, but leaves the
    global random generators as ``RNGStateHook`` restored them. Arguments are those
    of ``IterBasedTrainLoop``.
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
        elif self._iter > 0:
            self.dataloader_iterator = _ReplayKeepingRNG(self.dataloader_iterator, self._iter)
        return super().run()
