"""Resume: kill ``tools/train.py`` after its first checkpoint, continue with ``mim train mmseg --resume``.

Checks that the second run starts at the checkpoint's iteration and ends at ``max_iters``, that its
learning rates are those of an uninterrupted run of the same schedule (warm-up + cosine) and that
its loss continues from where the first run was instead of starting over.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import REPO, read_scalars, write_caption_folder, write_small_config

BATCH, MAX_ITERS, WARMUP, CKPT = 8, 60, 10, 20


def _env() -> dict:
    # PYTHONPATH: this checkout's mmseg_plugins, whatever the installed copy is
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _uninterrupted_lrs(lr: float) -> list[float]:
    """The learning rate of iterations 1..MAX_ITERS under the config's schedule, stepped without a break."""
    from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    schedulers = [
        LinearLR(optimizer, start_factor=0.1, by_epoch=False, begin=0, end=WARMUP),
        CosineAnnealingLR(optimizer, eta_min=1e-5, by_epoch=False, begin=WARMUP, end=MAX_ITERS),
    ]
    lrs = []
    for _ in range(MAX_ITERS):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    return lrs


@pytest.mark.slow
def test_kill_and_resume_continues(tmp_path: Path) -> None:
    data_root = write_caption_folder(tmp_path / "data", num=16)
    config = write_small_config(
        tmp_path / "cfg.py",
        data_root,
        batch_size=BATCH,
        max_iters=MAX_ITERS,
        lr=3e-3,
        warmup_iters=WARMUP,
        checkpoint_interval=CKPT,
        log_interval=1,
    )
    work = tmp_path / "work"

    # 1) train, and kill the process (SIGKILL, no clean-up) once the first checkpoint is written
    first = subprocess.Popen(
        [sys.executable, str(REPO / "tools" / "train.py"), str(config), "--work-dir", str(work)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        cwd=tmp_path,
    )
    output = []
    for line in first.stdout:
        output.append(line)
        if (work / "last_checkpoint").exists():
            first.send_signal(signal.SIGKILL)
            break
    first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL, "".join(output[-30:])
    killed = {r["step"]: r for r in read_scalars(work) if "loss" in r}
    killed_at = max(killed)
    assert CKPT <= killed_at < MAX_ITERS

    # 2) resume through mim (mmseg's own train.py) from the last checkpoint, to the end
    second = subprocess.run(
        [
            str(Path(sys.executable).parent / "mim"),
            "train",
            "mmseg",
            str(config),
            "--work-dir",
            str(work),
            "--resume",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=300,
    )
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-4000:]
    assert f"resumed epoch: 0, iter: {CKPT}" in log
    resumed = [r for r in read_scalars(work) if "loss" in r][len(killed) :]
    steps = [r["step"] for r in resumed]
    assert steps == list(range(CKPT + 1, MAX_ITERS + 1))
    assert (work / f"iter_{MAX_ITERS}.pth").exists()

    # learning rate: exactly the uninterrupted schedule, before and after the break
    expected = _uninterrupted_lrs(3e-3)
    for record in [*killed.values(), *resumed]:
        assert record["lr"] == pytest.approx(expected[record["step"] - 1], rel=1e-6), record["step"]

    # loss: the resumed run goes on from the checkpoint's model, not from a fresh one
    def mean_loss(rs):
        return sum(r["loss_itc"] for r in rs) / len(rs)

    start = mean_loss([killed[s] for s in range(1, 4)])
    before = mean_loss([killed[s] for s in range(CKPT - 4, CKPT + 1)])
    after = mean_loss(resumed[:5])
    print(
        f"loss_itc: iters 1-3 {start:.3f}, {CKPT - 4}-{CKPT} {before:.3f}, resumed {CKPT + 1}-{CKPT + 5} {after:.3f}"
    )
    assert start > 0.8 * math.log(BATCH)  # a fresh model starts at (or above) chance
    assert before < start - 0.5
    # still falling: at most a quarter of the way back up to a fresh model's loss
    assert after < before + 0.25 * (start - before)
