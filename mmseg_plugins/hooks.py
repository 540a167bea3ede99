"""Training hooks for image-text data."""

from __future__ import annotations

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

_INFO_KEY = "groupvit_skipped_samples"


@HOOKS.register_module()
class SkippedSamplesHook(Hook):
    """Report the corrupt image-text samples the datasets passed over.

    Each training sample carries ``skipped``: how many unreadable samples the
    dataset skipped just before it; the collate function sums them per batch
    into ``data_samples['skipped']``. Every ``interval`` iterations the counts
    are summed over processes and, when non-zero, written to the training log;
    the total is kept in the message hub (so it survives ``--resume``) and
    reported once more when training ends.

    Args:
        interval: iterations between two reports (and two all-reduces).
    """

    priority = "NORMAL"  # before LoggerHook (BELOW_NORMAL)

    def __init__(self, interval: int = 50) -> None:
        self.interval = interval
        self._pending = 0  # skipped on this process since the last report

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        samples = data_batch.get("data_samples") if isinstance(data_batch, dict) else None
        if isinstance(samples, dict) and "skipped" in samples:
            self._pending += int(samples["skipped"])
        if self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner):
            self._report(runner)

    def after_train(self, runner) -> None:
        total = runner.message_hub.get_info(_INFO_KEY, 0)
        runner.logger.info(f"Corrupt image-text samples skipped during training: {total}")

    def _report(self, runner) -> None:
        # every process reaches this at the same iteration, so the collective is safe
        pending = torch.tensor(self._pending, dtype=torch.long)
        all_reduce(pending)
        self._pending = 0
        skipped = int(pending)
        total = runner.message_hub.get_info(_INFO_KEY, 0) + skipped
        runner.message_hub.update_info(_INFO_KEY, total)
        if skipped:
            runner.logger.info(
                f"Iter {runner.iter + 1}: skipped {skipped} corrupt image-text samples "
                f"in the last {self.interval} iterations ({total} in total)"
            )
            runner.visualizer.add_scalars({"skipped_samples": total}, step=runner.iter + 1)


@HOOKS.register_module()
class TrainIterationHook(Hook):
    """Tell the model which training iteration it is about to run (``model.iteration``).

    Loss schedules read it (``GroupViTTrainModel.affinity_start_iter``). Set before every
    iteration from ``runner.iter``, which ``--resume`` restores, so a resumed run switches its
    losses on at the same iteration as an unbroken one. Models without the attribute are left alone.
    ``mmseg_plugins.runner`` registers it in every run, whatever the config's ``custom_hooks``.
    """

    priority = "VERY_HIGH"

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if hasattr(model, "iteration"):
            model.iteration = runner.iter
