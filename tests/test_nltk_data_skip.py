"""Without NLTK data the tests that need the real tagger skip (saying how to get the data) and the
suite downloads nothing; run in a child pytest whose NLTK search path is empty."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NLTK_SKIP_REASON

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import sys
import nltk
nltk.data.path[:] = []  # as on a fresh machine: no NLTK_DATA, no ~/nltk_data, nothing in the venv
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_nltk_tests_skip_without_data(tmp_path: Path) -> None:
    tests = [
        "tests/test_data_captions.py::test_uses_nltk_with_shared_data",
        "tests/test_data_captions.py::test_fallback_extractor",
    ]
    cmd = [sys.executable, "-c", CHILD, "-q", "-p", "no:cacheprovider", "-rs", *tests]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed, 1 skipped" in out.stdout, out.stdout
    assert re.search(
        rf"SKIPPED \[1\] tests/test_data_captions.py:\d+: {re.escape(NLTK_SKIP_REASON)}", out.stdout
    )
