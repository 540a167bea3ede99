"""The global random state of a training process: captured into checkpoints, restored on resume.

Training draws from four global generators: torch's CPU generator (Gumbel noise and drop path on
CPU, the image transforms when ``num_workers=0``), the current CUDA device's generator (Gumbel
noise on a GPU), Python's ``random`` (timm's crop and flip parameters) and numpy's. The data
loader's own randomness needs nothing here: ``InfiniteSampler`` shuffles with a generator of its
own seeded from the config's seed, and mmengine seeds every worker process from that seed, so the
batch replay of ``IterBasedTrainLoop`` on resume brings both to where they were.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

CHECKPOINT_KEY = "rng_state"


def capture_rng_state() -> dict[str, Any]:
    """The state of every global generator, as tensors, ints and tuples only.

    Plain types, so that ``torch.load(weights_only=True)`` reads them back without an allow-list.
    CUDA: only the current device's generator (the one a training process uses); asking for every
    device's would create a CUDA context on each of them in every process.
    """
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "python": random.getstate(),
        "numpy": {
            "kind": str(np_kind),
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set every global generator to ``state`` (from :func:`capture_rng_state`, possibly on a GPU)."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    keys = np_state["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state(
        (np_state["kind"], keys, np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"])
    )


@contextlib.contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Run the block without changing any global generator: the state is put back on exit."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the global random state in every checkpoint and continue from it on ``--resume``.

    With it, a run killed after a checkpoint and resumed from it trains on the same random draws
    as an uninterrupted run (bit for bit in one process). Three moments matter:

    - save: ``CheckpointHook`` saves in ``after_train_iter``, so the state saved is that after
      iteration ``i``'s update, before batch ``i + 1`` is drawn: where the resumed run starts.
    - restore: in ``before_train``, after ``Runner.resume`` (which may reseed when the config's
      seed differs from the checkpoint's) and before the loop draws anything. The loop's batch
      replay must not draw from the global generators (``ImageTextTrainLoop`` keeps them as
      they were); a plain ``load_from`` (iteration 0) restores nothing.
    - validation: it draws from the global generators (its data-loader iterator takes a seed) and
      runs *after* the checkpoint of the same iteration is saved. So when the resumed iteration is
      one where a validation was due, the hook runs that validation again before training goes
      on: the random state then moves exactly as it did in the interrupted run (and the metric of
      a run killed during its validation is not lost). Uninterrupted runs are unchanged.

    Multi-process: rank 0 saves its state and every rank restores it. Ranks share one stream
    anyway under mmengine's default ``randomness.diff_rank_seed=False``.
    """

    priority = "LOWEST"  # before_train: after every other hook's set-up, just before training

    def __init__(self) -> None:
        self._resumed: dict[str, Any] | None = None  # the state of the checkpoint loaded, if any

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = capture_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._resumed = checkpoint.get(CHECKPOINT_KEY)
        if self._resumed is None:
            self._resumed = {}  # loaded, but written without a random state

    def before_train(self, runner) -> None:
        state, self._resumed = self._resumed, None
        if state is None or runner.iter == 0:
            return
        if not state:
            print_log(
                f"Resuming at iteration {runner.iter} from a checkpoint without a random state: "
                "training goes on with other random draws (Gumbel noise, augmentation) than an "
                "uninterrupted run",
                logger="current",
                level=logging.WARNING,
            )
            return
        restore_rng_state(state)
        if _validation_due(runner):
            print_log(
                f"Resuming at iteration {runner.iter}: running the validation that was due after "
                "this checkpoint again, so that training continues from the same random state",
                logger="current",
                level=logging.INFO,
            )
            runner.val_loop.run()


def _validation_due(runner) -> bool:
    """Whether ``IterBasedTrainLoop`` validates right after iteration ``runner.iter`` (its own test)."""
    loop = runner.train_loop
    if runner.val_loop is None or not hasattr(loop, "val_interval"):
        return False
    loop._decide_current_val_interval()  # dynamic intervals: the one in force at this iteration
    return runner.iter >= loop.val_begin and (
        runner.iter % loop.val_interval == 0 or runner.iter == loop.max_iters
    )
