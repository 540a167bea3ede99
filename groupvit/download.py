"""Downloads into torch.hub's checkpoint cache, checked against the sha256 prefix in the file name.

Released files follow torch.hub's naming, ``<name>-<first hex digits of the sha256>.<ext>``
(``group_vit_gcc_yfcc_30e-879422e0.pth``). The check runs on every use, not only after a download,
so a cached file that was truncated or replaced (a poisoned cache) is an error naming the file
instead of weights that silently differ.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from groupvit.errors import InputError

__all__ = ["cache_dir", "download", "sha256_prefix_in_name"]

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[^.]+$")


def cache_dir() -> Path:
    """``$GROUPVIT_CACHE`` if set, else torch.hub's ``<torch.hub.get_dir()>/checkpoints``
    (``~/.cache/torch/hub/checkpoints`` unless ``$TORCH_HOME`` says otherwise)."""
    override = os.environ.get("GROUPVIT_CACHE")
    return Path(override) if override else Path(torch.hub.get_dir()) / "checkpoints"


def sha256_prefix_in_name(name: str) -> str | None:
    """The hex digits after the last ``-`` of a torch.hub-style file name, or None."""
    m = _HASH_IN_NAME.search(name)
    return m[1] if m else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _mismatch(path: Path, expected: str) -> str | None:
    """The file's sha256 prefix when it is not ``expected``, else None."""
    actual = _sha256(path)[: len(expected)]
    return None if actual == expected else actual


def download(url: str, sha256_prefix: str | None = None) -> Path:
    """Path of ``url`` in :func:`cache_dir`, downloaded once.

    With ``sha256_prefix`` the file must match it: checked after the download (a bad download is
    removed and never enters the cache) and on every later call (a bad cached file is an
    :class:`~groupvit.errors.InputError` that says to delete it). Without network, a
    ``RuntimeError`` says how to get the file by hand.
    """
    path = cache_dir() / url.rsplit("/", 1)[-1]
    if path.is_file():
        actual = _mismatch(path, sha256_prefix) if sha256_prefix else None
        if actual:
            raise InputError(
                f"cached checkpoint {path} has sha256 {actual}..., not {sha256_prefix}... as its name says: "
                "it is corrupt or was replaced; delete it to download it again"
            )
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        torch.hub.download_url_to_file(url, str(partial), progress=True)
    except Exception as e:  # URLError, HTTPError, timeouts, ... all mean "get it by hand"
        partial.unlink(missing_ok=True)
        raise RuntimeError(
            f"could not download {url} ({type(e).__name__}: {e}). Download the file by hand and pass its "
            f"path, e.g. create_model('groupvit_s', checkpoint='/path/to/{path.name}'), or put it in {path.parent}"
        ) from e
    actual = _mismatch(partial, sha256_prefix) if sha256_prefix else None
    if actual:
        partial.unlink()
        raise InputError(
            f"downloaded {url} has sha256 {actual}..., not {sha256_prefix}... as its name says: the download "
            f"is corrupt or the file changed; nothing was saved to {path.parent}"
        )
    os.replace(partial, path)
    return path
