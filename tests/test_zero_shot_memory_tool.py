"""tools/zero_shot_memory.py: one in-process measurement prints the setup and peak RSS (not checked)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import zero_shot_memory  # noqa: E402


@pytest.mark.parametrize("method", ["predict", "labels"])
def test_child_measurement(method: str, one_thread: None, capsys: pytest.CaptureFixture) -> None:
    argv = ["--model", "groupvit_tiny", "--size", "32", "48", "--child", "30", "slide", method]
    assert zero_shot_memory.main(argv) == 0
    setup, peak = map(float, capsys.readouterr().out.split())
    assert 0 < setup <= peak
