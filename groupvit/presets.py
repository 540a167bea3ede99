"""The named model presets: ``groupvit/model_configs/<name>.json``, each holding only the overrides of
:class:`~groupvit.config.GroupViTConfig`'s defaults (open_clip's model_configs). Read by the factory
and by the checkpoint loader (which names the preset a file fits); imports neither."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from groupvit.config import GroupViTConfig, apply_overrides

__all__ = ["get_model_config", "list_models"]

_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"


def _preset_paths() -> dict[str, Path]:
    return {p.stem: p for p in sorted(_CONFIG_DIR.glob("*.json"))}


def list_models() -> list[str]:
    """Names of the available model presets."""
    return list(_preset_paths())


def get_model_config(name: str, **overrides: Any) -> GroupViTConfig:
    """The :class:`GroupViTConfig` of preset ``name`` with optional overrides applied.

    Overrides are dataclass fields; tower fields nested (``vision={"width": 64}``) or dotted
    (``**{"vision.width": 64}``). Unknown keys raise ``KeyError`` naming the key.
    """
    paths = _preset_paths()
    if name not in paths:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(paths)}")
    with open(paths[name], encoding="utf-8") as f:
        preset = json.load(f)
    try:
        cfg = apply_overrides(GroupViTConfig(), preset)
    except KeyError as e:
        raise KeyError(f"in preset {paths[name]}: {e.args[0]}") from None
    return apply_overrides(cfg, overrides) if overrides else cfg
