"""Data transforms of the GroupViT configs (mmseg's ``TRANSFORMS`` registry)."""

from __future__ import annotations

from typing import Any

from mmcv.transforms import Resize
from mmseg.registry import TRANSFORMS

import groupvit

__all__ = ["PresetResize"]


@TRANSFORMS.register_module()
class PresetResize(Resize):
    """mmcv's ``Resize`` to a ``groupvit`` preset's evaluation size: the short side becomes the
    preset's ``config.inference.short_side`` (the one source of it, which the demo, the API and the
    transforms read too), keeping the aspect ratio, the long side capped at ``max_long_side``.

    Args:
        model_name: ``groupvit`` preset, see ``groupvit.list_models()``.
        max_long_side: the long side's cap (mmseg's ``scale=(2048, short)`` convention).
        **kwargs: other ``Resize`` arguments (``interpolation``, ``backend``, ...).
    """

    def __init__(self, model_name: str, max_long_side: int = 2048, **kwargs: Any) -> None:
        short_side = groupvit.get_model_config(model_name).inference.short_side
        super().__init__(scale=(max_long_side, short_side), keep_ratio=True, **kwargs)
        self.model_name = model_name
