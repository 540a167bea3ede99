"""The training runner: checkpoints that survive a kill, and a ``--resume`` that never starts over.

Select it with ``runner_type = "GroupViTRunner"`` in a config (``tools/train.py`` and mmseg's
``train.py`` build ``runner_type`` when a config sets it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import os.path as osp
import pickle
import re
from collections.abc import Callable

from mmengine.dist import master_only
from mmengine.logging import print_log
from mmengine.runner import BaseLoop, Runner
from mmengine.runner.checkpoint import _load_checkpoint
from mmseg.registry import RUNNERS

from groupvit.errors import InputError
from mmseg_plugins.hooks import TrainIterationHook
from mmseg_plugins.rng_state import RNGStateHook

# the names CheckpointHook gives by default: iter_{N}.pth (by_epoch=False), epoch_{N}.pth
_CHECKPOINT_NAME = re.compile(r"^(?:iter|epoch)_(\d+)\.pth$")
# what torch.load / mmengine raise for a file that is empty, cut short or not a checkpoint
_UNREADABLE = (EOFError, RuntimeError, ValueError, OSError, pickle.UnpicklingError)


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Create ``path`` through ``write(temporary_path)``: ``path`` is always the old file or the new one.

    The temporary file sits next to ``path`` (a rename within one file system is atomic), is
    flushed to disk before the rename, and is removed when ``write`` fails. The folder is synced
    after the rename so that the new name survives a power cut too.
    """
    folder, name = osp.split(osp.abspath(path))
    temporary = osp.join(folder, f"{name}.tmp")
    try:
        write(temporary)
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    if hasattr(os, "O_DIRECTORY"):  # POSIX: make the rename itself durable
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _candidates(work_dir: str) -> list[str]:
    """Checkpoints to resume from, newest first: ``iter_N`` / ``epoch_N`` by N, and ``last_checkpoint``'s."""
    last = None
    record = osp.join(work_dir, "last_checkpoint")
    if osp.isfile(record):
        with open(record, encoding="utf-8") as f:
            last = f.read().strip() or None
        if last is not None and not osp.isfile(last):
            print_log(
                f"--resume: {record} names {last}, which does not exist; looking for other checkpoints",
                logger="current",
                level=logging.WARNING,
            )
            last = None
    folders = [work_dir] + ([osp.dirname(last)] if last and osp.dirname(last) != work_dir else [])
    numbered = []
    for folder in folders:
        for name in os.listdir(folder):
            match = _CHECKPOINT_NAME.match(name)
            if match and osp.isfile(osp.join(folder, name)):
                numbered.append((int(match.group(1)), osp.join(folder, name)))
    ordered = [path for _, path in sorted(numbered, reverse=True)]
    # last_checkpoint wins only over older files: resuming behind a newer intact checkpoint would
    # train over it (a kill between the checkpoint's rename and last_checkpoint's write)
    if last is not None and not any(osp.samefile(last, path) for path in ordered):
        ordered.insert(0, last)
    return ordered


def find_resumable_checkpoint(work_dir: str) -> str | None:
    """The newest checkpoint in ``work_dir`` that loads, or None when the folder holds none.

    Each candidate is loaded (to the CPU, through mmengine's ``CheckpointLoader`` as ``resume``
    loads it) until one reads as a training checkpoint; the files skipped are named in a warning.
    Raises InputError when there are checkpoints but none of them can be read.
    """
    if not osp.isdir(work_dir):
        return None
    candidates = _candidates(work_dir)
    broken = []
    for path in candidates:
        try:
            checkpoint = _load_checkpoint(path, map_location="cpu")
            readable = isinstance(checkpoint, dict) and "iter" in checkpoint.get("meta", {})
            reason = "no meta['iter']: not a training checkpoint"
        except _UNREADABLE as e:
            readable, reason = False, " ".join(str(e).split())[:120] or type(e).__name__
        if readable:
            return path
        broken.append(path)
        # an older checkpoint may follow; training then writes over this file when it gets there
        print_log(
            f"--resume: skipping {path}: it cannot be read ({reason})",
            logger="current",
            level=logging.WARNING,
        )
    if broken:
        raise InputError(
            f"--resume: no checkpoint in {work_dir} can be read "
            f"({', '.join(osp.basename(p) for p in broken)}); move them away to train from scratch"
        )
    return None


def follow_max_iters(cfg) -> None:
    """Make the schedule follow ``train_cfg.max_iters`` when it differs from the config's ``max_iters``.

    The configs write their schedules for ``max_iters`` (warm-up 60 and cosine to 600 for the
    synthetic run), and mmengine does not re-evaluate them when ``--cfg-options
    train_cfg.max_iters=10`` is given, so a short run would end inside its warm-up. When an
    iteration-based scheduler ends at the config's ``max_iters``, every one's ``begin`` / ``end``
    is scaled by the same factor (warm-up stays the same share of the run), and the logger
    reports at least ten times per run; a schedule written for another length is left alone.
    """
    planned, actual = cfg.get("max_iters"), (cfg.get("train_cfg") or {}).get("max_iters")
    if not isinstance(planned, int) or not isinstance(actual, int) or planned <= 0 or planned == actual:
        return
    schedulers = cfg.get("param_scheduler") or []
    schedulers = [schedulers] if isinstance(schedulers, dict) else list(schedulers)
    by_iter = [s for s in schedulers if not s.get("by_epoch", True)]
    if not any(s.get("end") == planned for s in by_iter):
        return  # the schedule was written for another length (a config of its own): leave it
    for scheduler in by_iter:
        begin = min(actual, round(scheduler.get("begin", 0) * actual / planned))
        scheduler["begin"] = begin
        if isinstance(scheduler.get("end"), int):  # mmengine needs end > begin
            scheduler["end"] = max(begin + 1, min(actual, round(scheduler["end"] * actual / planned)))
    logger = (cfg.get("default_hooks") or {}).get("logger")
    if isinstance(logger, dict) and isinstance(logger.get("interval"), int):
        logger["interval"] = max(1, min(logger["interval"], actual // 10))
    print_log(
        f"train_cfg.max_iters {actual} (the config plans {planned}): learning-rate schedule scaled to "
        f"{[(s.get('type'), s.get('begin'), s.get('end')) for s in schedulers]}",
        logger="current",
        level=logging.INFO,
    )


@RUNNERS.register_module()
class GroupViTRunner(Runner):
    """mmengine's ``Runner`` with six changes for training runs. Arguments are ``Runner``'s.

    - ``--resume`` picks the newest checkpoint that loads (:func:`find_resumable_checkpoint`).
      mmengine trusts ``work_dir/last_checkpoint`` alone: when it is missing it logs "Auto resumed
      from the latest checkpoint None" and trains from iteration 0 over the existing checkpoints,
      and a checkpoint cut short by a kill ends the run with a traceback. Overridden in
      ``load_or_resume``, the one place that decides what to resume, by handing mmengine the file
      to resume as if the user had named it (``load_from``).
    - checkpoints are written atomically (:func:`atomic_write`): mmengine writes the final file in
      place, so a kill during the write leaves a truncated ``iter_N.pth``. Overridden in
      ``save_checkpoint``, which ``CheckpointHook`` calls, by letting mmengine write a temporary
      name in the same folder; object-store backends keep mmengine's own write.
      ``last_checkpoint`` is still written in place by ``CheckpointHook`` (in a method that also
      rotates old checkpoints); a torn one is read as missing, which the look-up above survives.
    - the schedule follows a ``train_cfg.max_iters`` given on the command line (:func:`follow_max_iters`).
    - a val ``data_root`` that does not exist turns validation off with a warning, instead of
      stopping a run on one's own captions before its first iteration.
    - ``iter`` does not build the training loop (its data) outside training: ``mim test --show-dir``.
    - an ``RNGStateHook`` is always registered, so that a resumed run draws the same random
      numbers as an uninterrupted one, whatever a config's ``custom_hooks`` list holds; so is a
      ``TrainIterationHook``, so that loss schedules (``affinity_start_iter``) see the iteration.
    """

    @classmethod
    def from_cfg(cls, cfg):
        follow_max_iters(cfg)
        return super().from_cfg(cfg)

    @property
    def iter(self) -> int:
        """The training iteration, 0 before training, without building the training loop: mmengine's
        property builds it (and so the training data set) when asked, and mmseg's visualisation hook
        asks for the step of every picture, so ``mim test CONFIG --show-dir`` of a training config
        failed on a missing training folder."""
        return self._train_loop.iter if isinstance(self._train_loop, BaseLoop) else 0

    def train(self):
        self._drop_missing_validation()
        return super().train()

    def _drop_missing_validation(self) -> None:
        """A val folder that does not exist turns validation off, with a warning naming it: training
        on one's own captions needs no segmentation val set (a missing train folder stays an error)."""
        loader = self._val_dataloader
        root = loader.get("dataset", {}).get("data_root") if isinstance(loader, dict) else None
        if root and not osp.isdir(root):
            self.logger.warning(
                f"val data_root {root!r} does not exist: training runs without zero-shot validation "
                "(set val_dataloader.dataset.data_root to a segmentation val set to validate)"
            )
            self._val_loop = self._val_dataloader = self._val_evaluator = None

    def register_hooks(self, default_hooks=None, custom_hooks=None) -> None:
        super().register_hooks(default_hooks, custom_hooks)
        for hook_type in (RNGStateHook, TrainIterationHook):
            if not any(isinstance(hook, hook_type) for hook in self._hooks):
                self.register_hook(hook_type())

    def load_or_resume(self) -> None:
        if self._resume and self._load_from is None and not self._has_loaded:
            found = find_resumable_checkpoint(self.work_dir)
            if found is None:
                self.logger.info(
                    f"--resume: no checkpoint in {self.work_dir}; training starts at iteration 0"
                )
                return
            self.logger.info(f"--resume: resuming from {found}")
            self._load_from = found
        super().load_or_resume()

    @master_only
    def save_checkpoint(
        self,
        out_dir: str,
        filename: str,
        file_client_args: dict | None = None,
        save_optimizer: bool = True,
        save_param_scheduler: bool = True,
        meta: dict | None = None,
        by_epoch: bool = True,
        backend_args: dict | None = None,
    ) -> None:
        def save(name: str) -> None:
            super(GroupViTRunner, self).save_checkpoint(
                out_dir,
                name,
                file_client_args,
                save_optimizer=save_optimizer,
                save_param_scheduler=save_param_scheduler,
                meta=meta,
                by_epoch=by_epoch,
                backend_args=backend_args,
            )

        if file_client_args is not None or backend_args is not None or "://" in out_dir:
            save(filename)  # not a local folder: no rename to rely on
            return
        atomic_write(osp.join(out_dir, filename), lambda temporary: save(osp.basename(temporary)))
