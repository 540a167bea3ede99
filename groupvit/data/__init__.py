"""Image-text training data: datasets, caption / image transforms, synthetic scenes.

Every sample is ``{"image": Tensor [3, S, S], "text": LongTensor [1 + K, 77], "skipped": int}``
(see docs/design.md). Heavy dependencies (timm, webdataset, nltk) load on first use.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ImageTextFolder": "groupvit.data.folder",
    "read_index": "groupvit.data.folder",
    "ImageTextStream": "groupvit.data.webdataset",
    "build_webdataset": "groupvit.data.webdataset",
    "expand_sources": "groupvit.data.shards",
    "CaptionTransform": "groupvit.data.captions",
    "extract_nouns": "groupvit.data.captions",
    "extract_words": "groupvit.data.captions",
    "build_train_transform": "groupvit.data.transforms",
    "build_eval_transform": "groupvit.data.transforms",
    "SkipCounter": "groupvit.data.skips",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'groupvit.data' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
