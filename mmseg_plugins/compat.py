"""Make mmsegmentation 1.2.2 + mmcv-lite 2.1.0 + mmengine 0.10 import and run on current PyTorch.

Imported first by :mod:`mmseg_plugins`, before anything touches ``mmseg``. Three fixes, each a no-op
where it is not needed:

1. ``mmcv._ext`` stub. mmseg imports ``mmcv.ops`` at import time, which loads the compiled
   ``mmcv._ext``; mmcv-lite has none (and full mmcv 2.1 does not build against current torch).
   GroupViT needs no compiled op, so a stub module lets every mmseg module import; an mmseg model
   that *calls* a compiled op gets a :class:`CompiledOpUnavailableError` naming the op.
2. ``torch.load`` safe globals. torch >= 2.6 loads with ``weights_only=True``; mmengine checkpoints
   hold ``HistoryBuffer`` and numpy objects (message hub, metric history), which are allow-listed
   (with a ``getattr`` limited to ``HistoryBuffer``'s methods, see :func:`_history_buffer_getattr`).
   A checkpoint that also pickles other objects (the official GroupViT release keeps its training
   config next to the weights) loads through :func:`load_checkpoint_file`: those objects become
   inert :class:`UnpickledPlaceholder`s, nothing outside the allow-list is imported or called, and
   mmengine's local-file loader (``--checkpoint``, ``load_from``) uses it.
3. ``setuptools < 81`` for ``mim``: openmim 0.3.9 imports ``pkg_resources`` (removed in setuptools 81);
   :func:`check_mim_setuptools` says so in words instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import os
import pickle
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "CompiledOpUnavailableError",
    "check_mim_setuptools",
    "UnpickledPlaceholder",
    "install_mmcv_ext_stub",
    "load_checkpoint_file",
    "register_mmengine_local_loader",
    "register_torch_load_safe_globals",
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


def _numpy_safe_globals() -> list[Any]:
    import numpy as np

    found: list[Any] = [np.ndarray, np.dtype]
    # numpy 2 moved the pickling helpers to numpy._core; checkpoints written with numpy 1 name numpy.core.
    for module_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found += [getattr(module, n) for n in ("_reconstruct", "scalar") if hasattr(module, n)]
    # Scalar types (np.float64, ...) and their dtype classes (np.dtypes.Float64DType, ...).
    scalars = "bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 str_ bytes_"
    found += [getattr(np, name) for name in scalars.split()]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        found += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return found


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


def register_torch_load_safe_globals() -> bool:
    """Allow-list mmengine's and numpy's checkpoint objects for ``torch.load(weights_only=True)``."""
    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is None:  # torch < 2.4 loads with weights_only=False anyway
        return False
    from mmengine.logging import HistoryBuffer

    add_safe_globals([HistoryBuffer, (_history_buffer_getattr, "builtins.getattr"), *_numpy_safe_globals()])
    return True


class UnpickledPlaceholder:
    """Stands in for a pickled object whose class ``torch.load(weights_only=True)`` does not allow.

    Keeps what the pickle gave it (constructor arguments, state, items) as plain data; never imports
    or calls the original class. ``qualified_name`` names that class.
    """

    qualified_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> UnpickledPlaceholder:
        obj = super().__new__(cls)
        obj.args, obj.state, obj.items, obj.elements = args, None, {}, []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.elements.append(value)

    def extend(self, values: Any) -> None:
        self.elements.extend(values)

    def __repr__(self) -> str:
        return f"<{self.qualified_name}, not unpickled>"


def _placeholder_type(qualified_name: str) -> type:
    name = qualified_name.rsplit(".", 1)[-1]
    return type(name, (UnpickledPlaceholder,), {"qualified_name": qualified_name, "__module__": __name__})


def load_checkpoint_file(filename: str, map_location: Any = None) -> Any:
    """``torch.load(weights_only=True)``; objects of classes it does not allow become placeholders.

    Modules torch blocks outright (``os``, ``subprocess``, ...) still raise ``UnpicklingError``.
    """
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
        if not unsafe:
            raise
    with torch.serialization.safe_globals([(_placeholder_type(name), name) for name in unsafe]):
        checkpoint = torch.load(filename, map_location=map_location, weights_only=True)
    warnings.warn(
        f"{filename}: kept placeholders instead of unpickling objects of {', '.join(sorted(unsafe))} "
        "(tensors are loaded as usual)",
        stacklevel=2,
    )
    return checkpoint


def register_mmengine_local_loader() -> None:
    """Make mmengine load local checkpoint files with :func:`load_checkpoint_file`."""
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename: str, map_location: Any = None) -> Any:
        filename = os.path.expanduser(filename)
        if not os.path.isfile(filename):
            raise FileNotFoundError(f"checkpoint {filename} can not be found")
        return load_checkpoint_file(filename, map_location)

    CheckpointLoader.register_scheme(prefixes="", loader=load_from_local, force=True)


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
register_torch_load_safe_globals()
register_mmengine_local_loader()
