"""Model loading for the command-line tools: the preset is read off the checkpoint's shapes."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from groupvit.errors import InputError
from groupvit.factory import create_model
from groupvit.models.groupvit import GroupViT
from groupvit.presets import get_model_config, list_models

__all__ = ["detect_preset", "fusion_overrides", "load_model"]

_FUSED_BLOCK = re.compile(r"^(vision\.stages\.\d+|text)\.blocks\.(\d+)\.fusion\.")


def fusion_overrides(state_dict: dict[str, torch.Tensor]) -> dict[str, int | bool]:
    """The ``config.fusion`` that ``state_dict``'s fused blocks need: ``{"fusion.layers": N,
    "fusion.text_layers": M}`` (the most fused blocks of a grouping stage / of the text tower, plus
    ``"fusion.relative_output": True`` where the layers carry its flag), or ``{}`` for an unfused
    checkpoint."""
    blocks: dict[str, set[str]] = {}
    for key in state_dict:
        match = _FUSED_BLOCK.match(key)
        if match:
            blocks.setdefault(match.group(1), set()).add(match.group(2))
    if not blocks:
        return {}
    vision = max((len(b) for tower, b in blocks.items() if tower != "text"), default=0)
    fusion: dict[str, int | bool] = {
        "fusion.layers": vision,
        "fusion.text_layers": len(blocks.get("text", ())),
    }
    if any(key.endswith(".fusion.relative_output_flag") for key in state_dict):
        fusion["fusion.relative_output"] = True
    return fusion


def detect_preset(state_dict: dict[str, torch.Tensor]) -> tuple[str, GroupViT] | None:
    """The preset whose parameter names and shapes equal ``state_dict``'s (our layout) and a fresh
    model of it (built for the comparison, so the caller loads into it), or None."""
    optional = {"multi_label_logit_scale"}  # HF files lack it; loading keeps the model's init

    def shapes(sd: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
        return {key: tuple(value.shape) for key, value in sd.items() if key not in optional}

    wanted = shapes(state_dict)
    fusion = fusion_overrides(state_dict)
    for name in list_models():
        cfg = get_model_config(name, **fusion)
        widths = (
            wanted.get("vision.pos_embed", (0,))[-1],
            wanted.get("text.token_embedding.weight", (0,))[-1],
        )
        if widths != (cfg.vision.width, cfg.text.width):
            continue  # cheap test first: only plausible presets are built
        model = GroupViT.from_config(cfg)
        if shapes(model.state_dict()) == wanted:
            return name, model
    return None


def load_model(
    checkpoint: str | Path,
    model_name: str | None = None,
    device: str = "cpu",
    overrides: dict[str, object] | None = None,
) -> GroupViT:
    """The model of ``checkpoint`` in eval mode on ``device``; its preset detected when not given.

    ``overrides`` (preset fields, ``{"vision.num_group_tokens": [32]}``) need ``model_name``: a
    checkpoint trained with ``model_overrides`` fits no preset as it stands.
    """
    if overrides and model_name is None:
        raise InputError("preset overrides need the preset they change: name it with --model")
    from groupvit.checkpoint import convert_state_dict, load_checkpoint, read_checkpoint

    try:
        state_dict = convert_state_dict(read_checkpoint(checkpoint))
    except InputError as e:
        text = str(e)
        raise InputError(text if str(checkpoint) in text else f"checkpoint {checkpoint}: {text}") from None
    if model_name is not None:
        fields = {**fusion_overrides(state_dict), **(overrides or {})}
        return create_model(model_name, checkpoint=state_dict, **fields).to(device).eval()
    found = detect_preset(state_dict)
    if found is None:
        raise InputError(
            f"checkpoint {checkpoint} fits none of the presets ({', '.join(list_models())}); name one with --model"
        )
    model_name, model = found
    load_checkpoint(model, state_dict, model_name=model_name)
    return model.to(device).eval()
