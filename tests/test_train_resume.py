"""Resume: ``--resume`` continues an interrupted run exactly, from the newest checkpoint that loads.

- ``kill -9`` of ``tools/train.py`` after a checkpoint, then ``mim train mmseg --resume``: the same
  losses at every iteration and bit-identical final weights and optimiser state as an uninterrupted
  run (one thread, folder data, Gumbel noise on); the same in-process with a data-loader worker.
- which checkpoint ``--resume`` takes: without ``last_checkpoint`` the newest (and no checkpoint
  is written over), a truncated or empty newest one is skipped with a warning, none readable is a
  one-line error.
- checkpoints are written atomically; the random-state helpers round-trip.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmseg.registry import RUNNERS
from train_helpers import REPO, read_scalars, write_caption_folder, write_small_config

from groupvit.checkpoint_io import read_checkpoint_file
from groupvit.data.synthetic import CLASSES
from groupvit.errors import InputError
from mmseg_plugins.loops import _ReplayKeepingRNG
from mmseg_plugins.rng_state import RNGStateHook, capture_rng_state, preserved_rng_state, restore_rng_state
from mmseg_plugins.runner import atomic_write, find_resumable_checkpoint

BATCH, MAX_ITERS, WARMUP, CKPT = 8, 12, 4, 4
# logged per iteration and fixed by the weights and the random draws (not timings)
COMPARED = ("loss", "loss_itc", "loss_multi_label", "loss_noun_group", "lr", "grad_norm", "logit_scale")


def _env() -> dict:
    # PYTHONPATH: this checkout's mmseg_plugins, whatever the installed copy is
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _write_config(root: Path) -> Path:
    data_root = write_caption_folder(root / "data", num=16)
    return write_small_config(
        root / "cfg.py",
        data_root,
        batch_size=BATCH,
        max_iters=MAX_ITERS,
        lr=3e-3,
        warmup_iters=WARMUP,
        checkpoint_interval=CKPT,
        log_interval=1,
    )


def _train(config: Path, work: Path, resume: bool = False, num_workers: int = 0):
    """One in-process run, built as tools/train.py builds it (the config's ``runner_type``)."""
    cfg = Config.fromfile(config)
    cfg.work_dir, cfg.resume = str(work), resume
    cfg.train_dataloader.num_workers = num_workers
    cfg.train_dataloader.persistent_workers = num_workers > 0
    runner = RUNNERS.build(cfg)
    runner.train()
    return runner


def _load(path: Path) -> dict:
    return read_checkpoint_file(path)  # the one reader (mmengine objects allowed by mmseg_plugins)


def _assert_identical(a, b, where: str = "") -> None:
    """Equal nested containers; tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_identical(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f"{where}/{i}")
    else:
        assert a == b, where


def _assert_same_training(a: Path, b: Path) -> None:
    """Two final checkpoints with the same weights, optimiser, schedulers and skipped-sample count."""
    ca, cb = _load(a), _load(b)
    assert len(ca["state_dict"]) > 100
    for key in ("state_dict", "optimizer", "param_schedulers", "rng_state"):
        _assert_identical(ca[key], cb[key], key)
    info = ("groupvit_skipped_samples", "iter")
    assert [ca["message_hub"]["runtime_info"].get(k) for k in info] == [
        cb["message_hub"]["runtime_info"].get(k) for k in info
    ]


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _mmengine_log() -> Iterator[list[str]]:
    """The messages mmengine's current logger writes inside the block."""
    logger = MMLogger.get_current_instance()
    messages: list[str] = []
    handler = logging.Handler(level=logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """(config, work dir) of one uninterrupted in-process run: iter_4, iter_8 and iter_12.pth."""
    root = tmp_path_factory.mktemp("reference")
    config = _write_config(root)
    with _one_thread():
        runner = _train(config, root / "work")
    # every run has the hook, also with a config whose custom_hooks list leaves it out
    assert sum(isinstance(h, RNGStateHook) for h in runner.hooks) == 1
    return config, root / "work"


def _resume_in(work: Path, reference_work: Path, names: list[str]) -> Path:
    work.mkdir()
    for name in names:
        shutil.copy(reference_work / name, work / name)
    return work


@pytest.mark.slow
def test_kill_and_resume_is_bit_identical(tmp_path: Path) -> None:
    config = _write_config(tmp_path)
    train = [sys.executable, str(REPO / "tools" / "train.py"), str(config)]

    # 1) the uninterrupted run
    whole = subprocess.run(
        [*train, "--work-dir", str(tmp_path / "whole")],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert whole.returncode == 0, (whole.stdout + whole.stderr)[-4000:]

    # 2) the same run, killed (SIGKILL, no clean-up) once its first checkpoint is written
    work = tmp_path / "work"
    first = subprocess.Popen(
        [*train, "--work-dir", str(work)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    output = []
    for line in first.stdout:
        output.append(line)
        if (work / "last_checkpoint").exists():
            first.send_signal(signal.SIGKILL)
            break
    first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL, "".join(output[-30:])
    resumed_from = int(Path((work / "last_checkpoint").read_text()).stem.split("_")[1])
    killed = [r for r in read_scalars(work) if "loss" in r]
    assert CKPT <= resumed_from <= killed[-1]["step"] < MAX_ITERS

    # 3) resume through mim (mmseg's own train.py), to the end
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
    assert f"resumed epoch: 0, iter: {resumed_from}" in log
    resumed = [r for r in read_scalars(work) if "loss" in r][len(killed) :]
    assert [r["step"] for r in resumed] == list(range(resumed_from + 1, MAX_ITERS + 1))

    # every logged loss and learning rate, before the kill and after the resume, is the uninterrupted run's
    expected = {r["step"]: r for r in read_scalars(tmp_path / "whole") if "loss" in r}
    for record in [*killed, *resumed]:
        assert {k: record[k] for k in COMPARED} == {k: expected[record["step"]][k] for k in COMPARED}, record
    _assert_same_training(work / f"iter_{MAX_ITERS}.pth", tmp_path / "whole" / f"iter_{MAX_ITERS}.pth")


@pytest.mark.slow
def test_resume_with_a_worker_is_bit_identical(tmp_path: Path) -> None:
    """num_workers=1 (the tiny config's): the workers' generators come back through the batch replay."""
    config = _write_config(tmp_path)
    with _one_thread():
        _train(config, tmp_path / "whole", num_workers=1)
        work = _resume_in(tmp_path / "work", tmp_path / "whole", ["iter_4.pth"])
        runner = _train(config, work, resume=True, num_workers=1)
    assert runner.iter == MAX_ITERS
    _assert_same_training(work / f"iter_{MAX_ITERS}.pth", tmp_path / "whole" / f"iter_{MAX_ITERS}.pth")


@pytest.mark.slow
def test_without_last_checkpoint_resumes_from_the_newest(reference, tmp_path: Path) -> None:
    config, ref = reference
    work = _resume_in(tmp_path / "work", ref, ["iter_4.pth", "iter_8.pth"])
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in work.glob("*.pth")}
    with _one_thread():
        runner = _train(config, work, resume=True)
    assert runner.iter == MAX_ITERS
    # iterations 9-12 only: the checkpoints it found are untouched
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in work.glob("iter_[48].pth")} == before
    log = next(work.glob("*/*.log")).read_text()
    assert f"--resume: resuming from {work / 'iter_8.pth'}" in log and "Iter(train) [ 9/12]" in log
    assert "Iter(train) [ 8/12]" not in log
    _assert_same_training(work / "iter_12.pth", ref / "iter_12.pth")


@pytest.mark.slow
def test_truncated_newest_checkpoint_falls_back_to_an_intact_one(reference, tmp_path: Path) -> None:
    config, ref = reference
    work = _resume_in(tmp_path / "work", ref, ["iter_4.pth", "iter_8.pth"])
    broken = work / "iter_8.pth"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])  # killed while writing
    (work / "last_checkpoint").write_text(str(broken))
    with _one_thread():
        runner = _train(config, work, resume=True)
    log = next(work.glob("*/*.log")).read_text()
    assert f"--resume: skipping {broken}: it cannot be read ({broken} is a damaged zip archive" in log
    assert f"resumed epoch: 0, iter: {CKPT}" in log
    assert runner.iter == MAX_ITERS
    _assert_same_training(work / "iter_12.pth", ref / "iter_12.pth")


def test_no_readable_checkpoint_is_a_one_line_error(tmp_path: Path) -> None:
    config = _write_config(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "iter_4.pth").write_bytes(b"")
    (work / "iter_8.pth").write_bytes(b"not a checkpoint")
    message = re.escape(
        f"--resume: no checkpoint in {work} can be read (iter_8.pth, iter_4.pth); "
        "move them away to train from scratch"
    )
    with pytest.raises(InputError, match=message):
        _train(config, work, resume=True)
    assert sorted(p.name for p in work.glob("*.pth")) == ["iter_4.pth", "iter_8.pth"]
    assert (work / "iter_4.pth").read_bytes() == b""


@pytest.mark.parametrize(
    ("files", "last", "expected", "warning"),
    [
        (["iter_4.pth", "iter_8.pth"], None, "iter_8.pth", None),
        # a kill between the checkpoint's rename and last_checkpoint's update
        (["iter_4.pth", "iter_8.pth"], "iter_4.pth", "iter_8.pth", None),
        (["iter_4.pth"], "iter_8.pth", "iter_4.pth", "names {work}/iter_8.pth, which does not exist"),
        (["iter_4.pth", "empty:iter_8.pth"], "iter_8.pth", "iter_4.pth", "skipping {work}/iter_8.pth"),
        (["iter_4.pth", "best_iter_8.pth"], None, "iter_4.pth", None),
        ([], None, None, None),
    ],
)
def test_find_resumable_checkpoint(tmp_path: Path, files, last, expected, warning) -> None:
    for name in files:
        empty, _, name = name.rpartition(":")
        if empty:
            (tmp_path / name).write_bytes(b"")
        else:
            torch.save({"meta": {"iter": 4}, "state_dict": {"w": torch.zeros(2)}}, tmp_path / name)
    if last:
        (tmp_path / "last_checkpoint").write_text(str(tmp_path / last))
    with _mmengine_log() as messages:
        found = find_resumable_checkpoint(str(tmp_path))
    assert found == (str(tmp_path / expected) if expected else None)
    warnings = [m for m in messages if m.startswith("--resume")]
    assert len(warnings) == (warning is not None)
    if warning:
        assert warning.format(work=tmp_path) in warnings[0]


def test_checkpoint_write_that_fails_leaves_the_old_file(tmp_path: Path, monkeypatch) -> None:
    from mmengine.fileio.backends.local_backend import LocalBackend

    config = _write_config(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    torch.save({"meta": {"iter": 4}}, work / "iter_4.pth")
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work)
    runner = RUNNERS.build(cfg)  # not trained: no optimiser or schedulers to save yet
    save = dict(by_epoch=False, save_optimizer=False, save_param_scheduler=False)
    runner.save_checkpoint(str(work), "iter_99.pth", **save)
    assert len(_load(work / "iter_99.pth")["state_dict"]) > 100
    listing = sorted(os.listdir(work))
    assert {"iter_4.pth", "iter_99.pth"} <= set(listing) and not [n for n in listing if "tmp" in n]
    old = (work / "iter_4.pth").read_bytes()

    def put_half_then_fail(self, obj: bytes, filepath) -> None:
        Path(filepath).write_bytes(obj[: len(obj) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(LocalBackend, "put", put_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        runner.save_checkpoint(str(work), "iter_4.pth", **save)
    assert (work / "iter_4.pth").read_bytes() == old
    assert sorted(os.listdir(work)) == listing  # no partial file, no temporary


def test_atomic_write_replaces_or_keeps(tmp_path: Path) -> None:
    path = tmp_path / "last_checkpoint"
    atomic_write(str(path), lambda temporary: Path(temporary).write_text("first"))
    atomic_write(str(path), lambda temporary: Path(temporary).write_text("second"))
    assert path.read_text() == "second"

    def interrupted(temporary: str) -> None:
        Path(temporary).write_text("thi")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(path), interrupted)
    assert path.read_text() == "second" and os.listdir(tmp_path) == ["last_checkpoint"]


def _draw() -> tuple:
    return torch.rand(3).tolist(), random.random(), np.random.rand(), np.random.randn()


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    np.random.randn()  # a cached Gaussian in numpy's state
    torch.save({"rng_state": capture_rng_state()}, tmp_path / "c.pth")
    expected = _draw()
    _draw()
    restore_rng_state(torch.load(tmp_path / "c.pth", weights_only=True)["rng_state"])
    assert _draw() == expected


def test_replay_leaves_the_random_state() -> None:
    def batches():
        while True:
            yield _draw()  # transforms run in this process (num_workers=0)

    with preserved_rng_state():
        expected = _draw()
    replay = _ReplayKeepingRNG(batches(), 2)
    assert next(replay) == expected
    next(replay)
    assert next(replay) == expected  # batch 3 is drawn from the state before the replay


def _with_validation(config: Path, root: Path) -> Path:
    """The small config plus a zero-shot validation after every checkpoint (it draws a seed)."""
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "make_synthetic_data.py"), "--out", str(root / "seg"),
         "--num-train", "0", "--num-val", "4"],
        check=True, capture_output=True, env=_env(),
    )  # fmt: skip
    val = f"""val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(type="CheckedSegDataset", data_root={str(root / "seg" / "val")!r},
                 data_prefix=dict(img_path="img_dir/val", seg_map_path="ann_dir/val"),
                 img_suffix=".png", seg_map_suffix=".png",
                 metainfo=dict(classes={tuple(CLASSES)!r}),
                 pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations"), dict(type="PackSegInputs")]))
val_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
val_cfg = dict(type="ValLoop")
"""
    text = config.read_text(encoding="utf-8")
    text = text.replace("val_cfg = None\nval_dataloader = None\nval_evaluator = None\n", val)
    text = text.replace(f"val_interval={MAX_ITERS}", f"val_interval={CKPT}")
    text = text.replace("custom_hooks = [", "custom_hooks = [dict(type='DatasetMetaHook'), ")
    assert "ValLoop" in text and f"val_interval={CKPT}" in text and "DatasetMetaHook" in text
    path = root / "cfg_val.py"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.slow
def test_resume_with_validation_is_bit_identical(tmp_path: Path) -> None:
    """Validation after the checkpoint of the resumed iteration draws from the random state; the
    resumed run validates again there, so it continues from the same state as the whole run."""
    config = _with_validation(_write_config(tmp_path), tmp_path)
    with _one_thread():
        _train(config, tmp_path / "whole")
        work = _resume_in(tmp_path / "work", tmp_path / "whole", ["iter_4.pth"])
        runner = _train(config, work, resume=True)
    assert runner.iter == MAX_ITERS
    log = next(work.glob("*/*.log")).read_text()
    assert "running the validation that was due after this checkpoint again" in log
    _assert_same_training(work / f"iter_{MAX_ITERS}.pth", tmp_path / "whole" / f"iter_{MAX_ITERS}.pth")


def _logged_iterations(work: Path) -> list[tuple[int, str, bool]]:
    """(step, total loss, whether the affinity loss is logged) per train line of the run's log.

    Read from the text log, not vis_data: the mmengine visualizer is a per-process singleton, so an
    in-process run after the module's first writes its scalars into that first run's folder."""
    log = next(work.glob("*/*.log")).read_text()
    return [
        (int(step), line.split(" loss: ")[1].split()[0], "loss_affinity_group" in line)
        for step, line in re.findall(r"Iter\(train\) \[\s*(\d+)/\d+\](.*)", log)
    ]


@pytest.mark.slow
def test_a_loss_switched_on_mid_run_resumes_exactly(tmp_path: Path) -> None:
    """``affinity_start_iter`` and the weight's schedule read the runner's iteration
    (TrainIterationHook): the loss is off before the start and on after, with the scheduled weight,
    and a run resumed before the switch switches, and weighs, at the same iterations."""
    config = _write_config(tmp_path)
    scheduled = tmp_path / "scheduled.py"
    scheduled.write_text(
        f"_base_ = [{str(config)!r}]\n"
        "model = dict(affinity_group_weight=[[6, 0.5], [8, 2.0]], affinity_iterations=2, affinity_start_iter=6)\n"
        "train_cfg = dict(max_iters=8)\n"
    )
    with _one_thread():
        _train(scheduled, tmp_path / "whole")
    whole = _logged_iterations(tmp_path / "whole")
    assert [step for step, _, _ in whole] == list(range(1, 9))
    assert [step for step, _, on in whole if on] == [7, 8]
    work = _resume_in(tmp_path / "work", tmp_path / "whole", ["iter_4.pth"])
    with _one_thread():
        _train(scheduled, work, resume=True)
    assert _logged_iterations(work) == whole[4:]
    _assert_same_training(work / "iter_8.pth", tmp_path / "whole" / "iter_8.pth")
