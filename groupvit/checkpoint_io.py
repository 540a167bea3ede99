"""Checkpoint files on disk: read any supported format safely, write ``.pth`` or ``.safetensors``.

:func:`read_checkpoint_file` is the one reader of checkpoint files in this project: the API
(``create_model(checkpoint=...)``, ``load_checkpoint``), every tool, and mmengine's loader for
``load_from`` / ``--checkpoint`` / ``--resume`` (registered by ``mmseg_plugins.compat``) call it.
Formats, told apart by their first bytes rather than by the file name:

* ``.safetensors`` (8-byte header length, then a JSON header): read with the ``safetensors``
  package; no pickle involved.
* ``torch.save`` zip (torch >= 1.6) and the legacy ``torch.save`` format: restricted unpickling by
  :func:`groupvit.safe_unpickle.load_pickled` (tensors and plain data; anything else becomes an
  inert placeholder, never executed).

Anything else (a missing file, a directory, zero bytes, text such as an HTML error page or a
git-lfs pointer, a TorchScript archive) is an :class:`~groupvit.errors.InputError` that names the
file and says what it is.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from groupvit.errors import InputError
from groupvit.safe_unpickle import load_pickled

__all__ = ["read_checkpoint_file", "save_state_dict"]

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"  # the PROTO opcode that starts every pickle of protocol >= 2
_HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _is_safetensors(head: bytes, size: int) -> bool:
    """8-byte little-endian header length, then the JSON header's opening brace."""
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 8 + header_len <= size


def _describe(head: bytes) -> str:
    """What a file that is no checkpoint looks like, from its first bytes."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"not a checkpoint (unknown binary format; it starts with {head[:8]!r})"
    if "\x00" in text:
        return f"not a checkpoint (unknown binary format; it starts with {head[:8]!r})"
    first = text.strip().splitlines()[0][:60] if text.strip() else ""
    if first.startswith("version https://git-lfs"):
        return "a git-lfs pointer, not the checkpoint itself (run `git lfs pull`, or download the file)"
    if first.lower().startswith(("<!doctype html", "<html")):
        return "an HTML page, not a checkpoint (the download got a web page instead of the file)"
    return f"a text file, not a checkpoint (it starts with {first!r})"


def _check_file(path: Path) -> None:
    if path.is_dir():
        inside = [name for name in _HF_WEIGHT_FILES if (path / name).is_file()]
        hint = f"; pass the weights file inside it: {path / inside[0]}" if inside else ""
        raise InputError(f"checkpoint {path} is a directory, not a checkpoint file{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise InputError(f"checkpoint {path} is empty (0 bytes): the download or copy was cut short")


def read_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> Any:
    """The object stored in a checkpoint file (usually a dict), read without running any code.

    ``map_location`` as in ``torch.load``; ``.safetensors`` tensors go to it when it is a device
    name or ``torch.device``, else to the CPU. See the module docstring for the formats and errors.
    """
    path = Path(path).expanduser()
    _check_file(path)
    with open(path, "rb") as f:
        head = f.read(512)
    size = path.stat().st_size
    if _is_safetensors(head, size):
        return _read_safetensors(path, map_location)
    if head.startswith((_ZIP_MAGIC, _PICKLE_PROTO)):
        return load_pickled(path, map_location=map_location)
    what = _describe(head)
    named = " (despite its .safetensors name)" if path.suffix == ".safetensors" else ""
    raise InputError(f"checkpoint {path} is {what}{named}")


def _read_safetensors(path: Path, map_location: Any) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    device = str(map_location) if isinstance(map_location, (str, torch.device)) else "cpu"
    try:
        return load_file(path, device=device)
    except SafetensorError as e:
        raise InputError(f"checkpoint {path} is not a valid .safetensors file ({e})") from None


def save_state_dict(sd: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Write a plain state dict: ``.safetensors`` when ``path`` ends so, else ``torch.save``.

    safetensors stores each tensor contiguously and refuses tensors that share memory, so shared,
    non-contiguous and partial views are copied first. The ``{"format": "pt"}`` metadata is what transformers
    checks before loading a ``model.safetensors``.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"output {path} is a directory; give a file name, e.g. {path / 'model.pth'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix != ".safetensors":
        torch.save(dict(sd), path)
        return
    from safetensors.torch import save_file

    owners = Counter(value.untyped_storage().data_ptr() for value in sd.values())

    def alone(value: torch.Tensor) -> bool:  # the tensor is all of its storage and no other's
        whole = value.storage_offset() == 0 and value.untyped_storage().nbytes() == value.nbytes
        return owners[value.untyped_storage().data_ptr()] == 1 and value.is_contiguous() and whole

    out = {k: v if alone(v) else v.clone(memory_format=torch.contiguous_format) for k, v in sd.items()}
    save_file(out, str(path), metadata={"format": "pt"})
