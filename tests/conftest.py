"""Shared pytest set-up: NLTK data from ../shared/nltk_data, deterministic seeds."""

import os
from pathlib import Path

import pytest
import torch

_SHARED_NLTK = Path(__file__).resolve().parents[2] / "shared" / "nltk_data"
if "NLTK_DATA" not in os.environ and _SHARED_NLTK.is_dir():
    os.environ["NLTK_DATA"] = str(_SHARED_NLTK)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


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
