"""Make mmsegmentation 1.2.2 + mmcv-lite 2.1.0 + mmengine 0.10 import and run on current PyTorch.

Imported first by :mod:`mmseg_plugins`, before anything touches ``mmseg``. Three fixes, each a no-op
where it is not needed:

1. ``mmcv._ext`` stub. mmseg imports ``mmcv.ops`` at import time, which loads the compiled
   ``mmcv._ext``; mmcv-lite has none (and full mmcv 2.1 does not build against current torch).
   GroupViT needs no compiled op, so a stub module lets every mmseg module import; an mmseg model
   that *calls* a compiled op gets a :class:`CompiledOpUnavailableError` naming the op.
2. Safe checkpoint loading. mmengine's loaders for local files and http(s) URLs (``load_from``,
   ``--checkpoint``, ``--resume``, ``Runner.load_checkpoint``) are replaced by groupvit's one
   reader, :func:`groupvit.checkpoint_io.read_checkpoint_file` (safetensors, or restricted
   unpickling that never runs code from the file). mmengine's ``HistoryBuffer`` (the message hub
   that ``--resume`` restores) is registered with it, with a ``getattr`` limited to
   ``HistoryBuffer``'s methods (see :func:`_history_buffer_getattr`).
3. ``setuptools < 81`` for ``mim``: openmim 0.3.9 imports ``pkg_resources`` (removed in setuptools 81);
   :func:`check_mim_setuptools` says so in words instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import pickle
import sys
import types
from collections.abc import Callable
from typing import Any

__all__ = [
    "CompiledOpUnavailableError",
    "check_mim_setuptools",
    "install_mmcv_ext_stub",
    "register_history_buffer",
    "register_mmengine_loaders",
]

_EXT_NAME = "mmcv._ext"


class CompiledOpUnavailableError(RuntimeError):
    """Raised when code calls an mmcv compiled op while only the ``mmcv._ext`` stub is installed."""


def _unavailable_op(name: str) -> Callable[..., Any]:
    def op(*args: Any, **kwargs: Any) -> Any:
        raise CompiledOpUnavailableError(
            f"mmcv compiled op '{name}' is unavailable: this environment has mmcv-lite, whose "
            "'mmcv._ext' is a stub installed by mmseg_plugins.compat (GroupViT needs no compiled op). "
            "The model or transform you are running needs the full mmcv package built with its C++/CUDA "
            "extensions for your torch version; see https://mmcv.readthedocs.io/en/latest/get_started/build.html"
        )

    op.__name__ = op.__qualname__ = name
    return op


def _make_ext_stub() -> types.ModuleType:
    stub = types.ModuleType(_EXT_NAME, "Stub for mmcv's compiled extension (see mmseg_plugins.compat).")
    stub.__spec__ = importlib.machinery.ModuleSpec(_EXT_NAME, loader=None)
    stub.__file__ = None
    stub.__mmseg_plugins_stub__ = True

    def __getattr__(name: str) -> Any:  # PEP 562: any op name resolves to a raising function
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _unavailable_op(name)

    stub.__getattr__ = __getattr__
    return stub


def _real_ext_present() -> bool:
    if _EXT_NAME in sys.modules:
        return True
    try:
        return importlib.util.find_spec(_EXT_NAME) is not None
    except (ImportError, ValueError):
        return False


def install_mmcv_ext_stub() -> bool:
    """Put a stub ``mmcv._ext`` in ``sys.modules`` unless a compiled one exists; returns True if installed."""
    if _real_ext_present():
        return False
    import mmcv

    stub = _make_ext_stub()
    sys.modules[_EXT_NAME] = stub
    mmcv._ext = stub
    return True


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` as the weights-only unpickler may call it: only ``HistoryBuffer.<statistics method>``.

    torch.save pickles with protocol 2, which writes a method reference such as ``HistoryBuffer.mean``
    (kept in every ``HistoryBuffer``'s state) as ``getattr(HistoryBuffer, "mean")``. Allowing the real
    ``getattr`` would let a checkpoint reach any attribute of any allowed object; this one allows
    exactly the public functions of ``HistoryBuffer``.
    """
    from mmengine.logging import HistoryBuffer

    value = getattr(obj, name, None) if obj is HistoryBuffer and not name.startswith("_") else None
    if not isinstance(value, types.FunctionType):
        raise pickle.UnpicklingError(f"weights-only load: getattr({obj!r}, {name!r}) is not allowed")
    return value


def register_history_buffer() -> None:
    """Let groupvit's checkpoint reader rebuild mmengine's ``HistoryBuffer`` (the message hub)."""
    from mmengine.logging import HistoryBuffer

    from groupvit.safe_unpickle import allow_globals

    allow_globals([HistoryBuffer, (_history_buffer_getattr, "builtins.getattr")])


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader for local paths, through groupvit's safe reader (mmengine logs the name
    after ``load_from_``: "Loads checkpoint by local backend")."""
    from groupvit.checkpoint_io import read_checkpoint_file

    return read_checkpoint_file(filename, map_location)


def load_from_http(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader for http(s) URLs: download into groupvit's cache (rank 0 first), read safely."""
    from mmengine.dist import barrier, get_dist_info

    from groupvit.checkpoint import fetch_checkpoint
    from groupvit.checkpoint_io import read_checkpoint_file

    rank, world_size = get_dist_info()
    if rank == 0:
        path = fetch_checkpoint(filename)
    if world_size > 1:
        barrier()
        if rank > 0:
            path = fetch_checkpoint(filename)
    return read_checkpoint_file(path, map_location)


def register_mmengine_loaders() -> None:
    """Make mmengine load local files and http(s) URLs with groupvit's safe checkpoint reader."""
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes="", loader=load_from_local, force=True)
    CheckpointLoader.register_scheme(prefixes=("http://", "https://"), loader=load_from_http, force=True)


def check_mim_setuptools() -> None:
    """Raise a clear error if setuptools is too new (or missing) for ``mim`` (openmim 0.3.9)."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        version = None
    major = int(version.split(".")[0]) if version else None
    if major is None or major >= 81:
        raise RuntimeError(
            f"`mim` (openmim 0.3.9) imports pkg_resources, which needs setuptools < 81 (found {version}). "
            "Install it with: pip install 'setuptools>=77,<81'"
        )


install_mmcv_ext_stub()
register_history_buffer()
register_mmengine_loaders()
