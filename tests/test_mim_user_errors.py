"""User errors of ``mim test`` / ``mim train`` (mmseg's own scripts, our plugins through ``custom_imports``)
end the script with one line, ``groupvit: error: <message>``, and exit status 2; mim then adds its own
traceback of the failed subprocess, which nothing in the script's process can change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from groupvit.errors import InputError
from mmseg_plugins.user_errors import original_message, user_message

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/groupvit/groupvit_tiny_synthetic.py"
MIM = Path(sys.executable).parent / "mim"
VAL = "{val}"  # the synthetic_val fixture
MIM_LAST = "returned non-zero exit status 2."


def test_user_message_strips_wrappers_and_leaves_bugs() -> None:
    wrapped = InputError("class `ImageTextPairs` in mmseg/datasets: training data: neither x nor y")
    assert user_message(wrapped) == "training data: neither x nor y"
    worker = FileNotFoundError(
        "Caught FileNotFoundError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nFileNotFoundError: label map a.png   does not exist\n'
    )
    assert original_message(worker) == "label map a.png does not exist"
    loop = TypeError("TestLoop.__init__() got an unexpected keyword argument 'mode'")
    assert user_message(loop) == (
        "test_cfg.mode is not an option of mmengine's TestLoop; the segmentor's test mode is "
        "model.test_cfg (e.g. --cfg-options model.test_cfg.mode=...)"
    )
    assert user_message(TypeError("f() takes 1 argument")) is None  # a bug keeps its traceback
    assert user_message(RuntimeError("size mismatch")) is None


def _run(command: list[str]) -> tuple[int, list[str]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    return result.returncode, [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def test_uncaught_input_error_is_one_line_and_exit_2() -> None:
    code, lines = _run(
        [
            sys.executable,
            "-c",
            "import mmseg_plugins; from groupvit.errors import InputError; "
            "raise InputError('the file x.jpg is not an image')",
        ]  # fmt: skip
    )
    assert (code, lines) == (2, ["groupvit: error: the file x.jpg is not an image"])
    code, lines = _run([sys.executable, "-c", "import mmseg_plugins; raise KeyError('bug')"])
    assert code == 1 and lines[0] == "Traceback (most recent call last):" and lines[-1] == "KeyError: 'bug'"


def _mmseg_test_script() -> Path:
    import mmseg

    script = Path(mmseg.__file__).parent / ".mim" / "tools" / "test.py"
    if not script.is_file():
        pytest.skip(f"mmseg's tools/test.py is not installed at {script}")
    return script


@pytest.mark.slow  # 15-60 s (load 4)
def test_mmseg_test_script_ends_with_our_line(synthetic_val: Path) -> None:
    """mmseg's own tools/test.py (what mim runs): our line is the last one, exit status 2."""
    code, lines = _run([sys.executable, str(_mmseg_test_script()), CONFIG, "MISSING.pth",
                        "--cfg-options", f"test_dataloader.dataset.data_root={synthetic_val}"])  # fmt: skip
    assert code == 2 and lines[-1] == "groupvit: error: checkpoint MISSING.pth does not exist", lines[-5:]
    assert not any(line.startswith("Traceback") for line in lines)


def _mim_failure(command: list[str]) -> str:
    """Our line from a mim run: the last line before mim's traceback, which ends the output."""
    if not MIM.is_file():
        pytest.skip(f"no mim next to {sys.executable}")
    code, lines = _run([str(MIM), *command])
    assert code == 1 and lines[-1].endswith(MIM_LAST), lines[-5:]
    mims = len(lines) - 1 - lines[::-1].index("Traceback (most recent call last):")
    assert not any(line.startswith("Traceback") for line in lines[:mims]), lines[:mims][-20:]
    return lines[mims - 1]


@pytest.mark.slow  # 3 x 15-60 s (load 4)
@pytest.mark.parametrize(
    "options, message",
    [
        (
            ["test_dataloader.dataset.data_root=/nonexistent/val"],
            "data_root '/nonexistent/val' does not exist. CheckedSegDataset expects images",
        ),
        ([f"test_dataloader.dataset.data_root={VAL}"], "checkpoint MISSING.pth does not exist"),
        (
            [f"test_dataloader.dataset.data_root={VAL}", "test_cfg.mode=whole"],
            "test_cfg.mode is not an option of mmengine's TestLoop; the segmentor's test mode is "
            "model.test_cfg (e.g. --cfg-options model.test_cfg.mode=...)",
        ),
    ],
)
def test_mim_test_errors(options: list[str], message: str, synthetic_val: Path) -> None:
    options = [option.format(val=synthetic_val) for option in options]
    checkpoint = "MISSING.pth" if "mode" not in message else "checkpoints/groupvit_tiny_synthetic.pth"
    command = ["test", "mmseg", CONFIG, "--checkpoint", checkpoint]
    line = _mim_failure([*command, "--cfg-options", *options])
    assert line.startswith(f"groupvit: error: {message}"), line


@pytest.mark.slow  # 15-60 s (load 4)
def test_mim_train_error(tmp_path: Path) -> None:
    line = _mim_failure(["train", "mmseg", CONFIG, "--work-dir", str(tmp_path),
                         "--cfg-options", "train_dataloader.dataset.shards=x.tar"])  # fmt: skip
    assert line == (
        "groupvit: error: training data: both train_dataloader.dataset.data_root='data/synthetic/train' "
        "and .shards='x.tar' are given; add train_dataloader.dataset.data_root=None to train on the shards"
    )
