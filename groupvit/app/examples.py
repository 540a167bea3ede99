"""Example inputs for the page: the first scenes of the synthetic val set, drawn again from their seeds.

``tools/make_synthetic_data.py`` draws val scene i from ``default_rng([seed, 1, i])``; drawing it
here gives the same pixels (and caption) as ``data/synthetic_val/val/img_dir/val/00000i.png``
without the data set, so the app has examples in a fresh clone.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from groupvit.data.synthetic import CATEGORIES, render_grounded_scene

__all__ = ["Example", "SYNTHETIC_VOCABULARY", "write_examples"]

SYNTHETIC_VOCABULARY = ", ".join(CATEGORIES)
_VAL_SPLIT = 1  # make_synthetic_data's split id of "val"


class Example(NamedTuple):
    path: Path  # the scene as PNG
    caption: str  # its caption (names what is drawn)


def write_examples(folder: Path, count: int = 4, seed: int = 0, size: int = 64) -> list[Example]:
    """Write val scenes ``0 .. count-1`` of data seed ``seed`` as ``folder/00000i.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    examples = []
    for index in range(count):
        scene = render_grounded_scene(np.random.default_rng([seed, _VAL_SPLIT, index]), size)
        path = folder / f"{index:06d}.png"
        scene.image.save(path)
        examples.append(Example(path, scene.caption))
    return examples
