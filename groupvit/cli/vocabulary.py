"""Class lists from what a user types: the demo's ``--vocab`` / ``--dataset`` and the app's class box."""

from __future__ import annotations

from groupvit.class_names import DATASET_CLASSES
from groupvit.data import synthetic
from groupvit.data.synthetic_shapes import SHAPE_CLASSES
from groupvit.errors import InputError

__all__ = ["CLASS_LISTS", "build_class_names"]

# The benchmarks' class lists, plus the procedural scenes the synthetic model is trained on.
CLASS_LISTS: dict[str, tuple[str, ...]] = {
    **DATASET_CLASSES,
    "synthetic": synthetic.CLASSES,
    "synthetic_shapes": SHAPE_CLASSES,  # make_synthetic_data.py --cues shape
}


def build_class_names(vocab: str | None, dataset: str | None, background: bool = True) -> list[str]:
    """Class names, "background" first when ``background``; ``vocab`` is added to ``dataset``'s list.

    ``vocab`` is comma-separated. Duplicates (ignoring case and spacing) and a user-written
    "background" are dropped.
    """
    names: list[str] = []
    if dataset is not None:
        names.extend(CLASS_LISTS[dataset][1:])
    if vocab is not None:
        words = [w.strip() for w in vocab.split(",") if w.strip()]
        if not words:
            raise InputError(f"empty vocabulary: --vocab {vocab!r} holds no class name")
        names.extend(words)
    unique: dict[str, str] = {}
    for name in names:
        key = " ".join(name.lower().split())
        if key != "background":
            unique.setdefault(key, name)
    if not unique:
        raise InputError("empty vocabulary: no class name besides 'background'")
    return (["background"] if background else []) + list(unique.values())
