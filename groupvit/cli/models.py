"""Model loading for the command-line tools: the preset is read off the checkpoint's shapes."""

from __future__ import annotations

from pathlib import Path

import torch

from groupvit.errors import InputError
from groupvit.factory import create_model, get_model_config, list_models
from groupvit.models.groupvit import GroupViT

__all__ = ["detect_model_name", "load_model"]


def detect_model_name(state_dict: dict[str, torch.Tensor]) -> str | None:
    """The preset whose parameter names and shapes equal ``state_dict``'s (our layout), or None."""
    optional = {"multi_label_logit_scale"}  # HF files lack it; loading keeps the model's init

    def shapes(sd: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
        return {key: tuple(value.shape) for key, value in sd.items() if key not in optional}

    wanted = shapes(state_dict)
    for name in list_models():
        cfg = get_model_config(name)
        widths = (
            wanted.get("vision.pos_embed", (0,))[-1],
            wanted.get("text.token_embedding.weight", (0,))[-1],
        )
        if widths != (cfg.vision.width, cfg.text.width):
            continue  # cheap test first: only plausible presets are built
        if shapes(GroupViT.from_config(cfg).state_dict()) == wanted:
            return name
    return None


def load_model(checkpoint: str | Path, model_name: str | None = None, device: str = "cpu") -> GroupViT:
    """The model of ``checkpoint`` in eval mode on ``device``; its preset detected when not given."""
    from groupvit.checkpoint import convert_state_dict, read_checkpoint

    try:
        state_dict = convert_state_dict(read_checkpoint(checkpoint))
    except InputError as e:
        text = str(e)
        raise InputError(text if str(checkpoint) in text else f"checkpoint {checkpoint}: {text}") from None
    if model_name is None:
        model_name = detect_model_name(state_dict)
        if model_name is None:
            raise InputError(
                f"checkpoint {checkpoint} fits none of the presets ({', '.join(list_models())}); "
                "name one with --model"
            )
    return create_model(model_name, checkpoint=state_dict).to(device).eval()
