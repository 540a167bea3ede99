"""Shared pytest set-up: NLTK data from ../shared/nltk_data, deterministic seeds, no network.

Tests that need NLTK's real tokenizer and tagger carry ``@pytest.mark.nltk_data``; they run where
the data is found (``../shared/nltk_data`` in CI, the venv after ``make install``, ``~/nltk_data``,
``NLTK_DATA``) and are skipped, with a reason that says how to get it, where it is not. The suite
never downloads it: without the data, ``nltk.download`` fails at once and the code under test
takes its data-free fallback.
"""

import os
from pathlib import Path

import pytest
import torch

_SHARED_NLTK = Path(__file__).resolve().parents[2] / "shared" / "nltk_data"
if "NLTK_DATA" not in os.environ and _SHARED_NLTK.is_dir():
    os.environ["NLTK_DATA"] = str(_SHARED_NLTK)

NLTK_RESOURCES = ("tokenizers/punkt_tab/english/", "taggers/averaged_perceptron_tagger_eng/")
NLTK_SKIP_REASON = (
    "NLTK data punkt_tab / averaged_perceptron_tagger_eng not found: run "
    "`python -m nltk.downloader punkt_tab averaged_perceptron_tagger_eng` or set NLTK_DATA"
)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"nltk_data: needs NLTK's tagger data (else skipped: {NLTK_SKIP_REASON})"
    )


def _nltk_data_found(nltk) -> bool:
    try:
        for resource in NLTK_RESOURCES:
            nltk.data.find(resource)
    except LookupError:
        return False
    return True


def _no_download(*args: object, **kwargs: object) -> bool:
    raise OSError("the test suite does not download NLTK data (no network in tests)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import nltk
    except ImportError:
        return
    if _nltk_data_found(nltk):
        return
    nltk.download = _no_download  # the fallback path is what a machine without the data gets
    skip = pytest.mark.skip(reason=NLTK_SKIP_REASON)
    for item in items:
        if item.get_closest_marker("nltk_data") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """One torch thread for the test: on shared, oversubscribed cores OpenMP threads spin at
    barriers, and training steps of the tiny model ran ~10x faster on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synthetic_val(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic val set that ``make demo`` writes (``<root>/img_dir/val``, ``<root>/ann_dir/val``),
    generated afresh (2 s, deterministic) so a fresh clone runs the tests that read it."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("synthetic_val")
    tool = Path(__file__).resolve().parents[1] / "tools" / "make_synthetic_data.py"
    command = [sys.executable, str(tool), "--out", str(out), "--num-train", "0", "--num-val", "500"]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return out / "val"
