"""The README's first Python example runs as written (from the repository root) and finds the
scene's objects: the user's first five lines must not need reading the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # 45 s, a subprocess
def test_readme_python_example_runs_as_written() -> None:
    block = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert block, "README has no python block"
    run = subprocess.run(
        [sys.executable, "-c", block.group(1)], cwd=ROOT, capture_output=True, text=True, env=dict(os.environ)
    )
    assert run.returncode == 0, run.stderr[-2000:]
    shares, phrases = run.stdout.strip().splitlines()[-2:]
    assert "'apple'" in shares and "'tree'" in shares  # the scene's two objects are segmented
    assert "('a red apple', (0, 11)" in phrases and "('a tall tree', (16, 27)" in phrases
