"""Tuned prompts: a few kilobytes per task that replace a frozen model's class text embeddings.

A :class:`PromptSet` is what prompt tuning (:mod:`groupvit.prompt_tuning`) produces: the class
names, the L2-normalised class embeddings [K, D] that zero-shot segmentation scores the groups
against, the learned tensors themselves (the embeddings, or CoOp context vectors), and the
fingerprint of the model they were tuned on. The file is a ``.safetensors`` file (tensors and
string metadata only: nothing in it executes).

The embeddings mean something only for the weights they were tuned with and in the class order
they were tuned in, so :func:`check_prompts` refuses another model or class list in one line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from groupvit.errors import InputError

__all__ = ["PromptSet", "check_prompts", "load_prompts", "model_fingerprint", "save_prompts"]

FORMAT = "groupvit-prompts/1"
KINDS = ("embedding", "context")


@dataclass(frozen=True)
class PromptSet:
    """Tuned class prompts for one model and one class list."""

    class_names: tuple[str, ...]  # K foreground classes, in channel order (channel i + 1 with background)
    class_embeddings: Tensor  # [K, D] L2-normalised: what replaces the zero-shot text embeddings
    kind: str  # "embedding" (the class embeddings were learned) or "context" (CoOp context vectors)
    model_fingerprint: str  # model_fingerprint() of the model they were tuned on
    preset: str = "custom"  # the model's preset name, for messages
    tensors: Mapping[str, Tensor] = field(default_factory=dict)  # the learned tensors, e.g. "context" [M, W]
    info: Mapping[str, object] = field(default_factory=dict)  # how they were tuned (k, iterations, ...)


def model_fingerprint(model: nn.Module) -> str:
    """sha256 (first 16 hex digits) of every parameter and buffer of ``model``, names and bits.

    The whole model, not only the text tower: learned class embeddings are aligned with the image
    projector's output too. Taken in float32 on the CPU, so a copy of the model on another
    device gives the same fingerprint.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode("utf-8"))
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_prompts(prompts: PromptSet, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``prompts`` to ``path`` (``.safetensors``); an existing file only with ``overwrite``."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise InputError(f"prompt file {path}: give a name ending in .safetensors")
    if path.exists() and not overwrite:
        raise InputError(f"prompt file {path} exists; remove it or choose another name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"class_embeddings": prompts.class_embeddings}
    tensors.update({f"learned.{name}": value for name, value in prompts.tensors.items()})
    metadata = {
        "format": FORMAT,
        "class_names": json.dumps(list(prompts.class_names)),
        "kind": prompts.kind,
        "model_fingerprint": prompts.model_fingerprint,
        "preset": prompts.preset,
        "info": json.dumps(dict(prompts.info)),
    }
    save_file({k: v.detach().cpu().float().clone() for k, v in tensors.items()}, str(path), metadata)
    return path


def load_prompts(path: str | Path) -> PromptSet:
    """Read a prompt file written by :func:`save_prompts`; anything else is an :class:`InputError`."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(f"prompt file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError) as e:
        raise InputError(f"prompt file {path} is not a .safetensors file ({e})") from None
    if metadata.get("format") != FORMAT or "class_embeddings" not in tensors:
        raise InputError(f"prompt file {path} is no groupvit prompt file (written by prompt tuning)")
    names = tuple(json.loads(metadata["class_names"]))
    embeds = tensors["class_embeddings"]
    if embeds.ndim != 2 or embeds.shape[0] != len(names):
        raise InputError(f"prompt file {path}: {len(names)} class names but embeddings {tuple(embeds.shape)}")
    return PromptSet(
        class_names=names,
        class_embeddings=embeds,
        kind=metadata["kind"],
        model_fingerprint=metadata["model_fingerprint"],
        preset=metadata.get("preset", "custom"),
        tensors={k[len("learned.") :]: v for k, v in tensors.items() if k.startswith("learned.")},
        info=json.loads(metadata.get("info", "{}")),
    )


def check_prompts(prompts: PromptSet | str | Path, model: nn.Module, class_names: Sequence[str]) -> PromptSet:
    """``prompts`` (a file is loaded) checked against the model and the class list they will serve.

    Raises:
        InputError: the prompts were tuned on other weights, for other classes or another class
            order, or their embedding width is not the model's.
    """
    where = f"prompt file {prompts}" if isinstance(prompts, (str, Path)) else "prompts"
    if isinstance(prompts, (str, Path)):
        prompts = load_prompts(prompts)
    if tuple(class_names) != prompts.class_names:
        raise InputError(
            f"{where} were tuned for classes {list(prompts.class_names)}, not {list(class_names)}: "
            "pass the same names in the same order, or tune prompts for this class list"
        )
    found = model_fingerprint(model)
    if found != prompts.model_fingerprint:
        raise InputError(
            f"{where} belong to model {prompts.preset} with fingerprint {prompts.model_fingerprint}, "
            f"not to this one ({found}): load the checkpoint they were tuned on"
        )
    return prompts
