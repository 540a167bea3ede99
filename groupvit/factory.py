"""Public factory: model creation (with transforms) and the tokenizer, over the presets of
:mod:`groupvit.presets` and the checkpoint loader of :mod:`groupvit.checkpoint`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from groupvit.checkpoint import load_checkpoint
from groupvit.models.groupvit import GroupViT
from groupvit.presets import get_model_config

if TYPE_CHECKING:
    from groupvit.preprocess import EvalTransform
    from groupvit.tokenizer import Tokenizer


def create_model(
    name: str,
    checkpoint: str | Path | dict[str, torch.Tensor] | None = None,
    **overrides: Any,
) -> GroupViT:
    """Build model ``name`` (see :func:`list_models`) and optionally load weights.

    Args:
        name: preset name, e.g. ``"groupvit_s"``.
        checkpoint: a file path, an http(s) URL, a released tag (``"gcc_yfcc"``, ``"gcc_redcaps"``
            for ``groupvit_s``) or a state dict, in the official, HF or our own layout.
        overrides: config overrides, e.g. ``**{"vision.drop_path_rate": 0.0}``.

    The model is returned in training mode (``eval()`` is not implied), on the CPU.
    """
    model = GroupViT.from_config(get_model_config(name, **overrides))
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, model_name=name)
    return model


def create_model_and_transforms(
    name: str,
    checkpoint: str | Path | dict[str, torch.Tensor] | None = None,
    **overrides: Any,
) -> tuple[GroupViT, EvalTransform]:
    """:func:`create_model` in ``eval()`` mode, and the transform for its evaluation input.

    ``transform(image)`` turns a path, a PIL image or an ``HxWx3`` uint8 array into the
    ImageNet-normalised ``[3, h, w]`` tensor at the preset's ``config.inference.short_side``
    (448 for GroupViT-S, 320 for the synthetic model), as open_clip's ``preprocess`` does for CLIP.
    """
    from groupvit.preprocess import EvalTransform

    model = create_model(name, checkpoint=checkpoint, **overrides).eval()
    return model, EvalTransform(model.config.inference.short_side)


def get_tokenizer(context_length: int = 77) -> Tokenizer:
    """CLIP BPE tokenizer: ``list[str] | str -> LongTensor [B, context_length]``."""
    from groupvit.tokenizer import Tokenizer

    return Tokenizer(context_length=context_length)
