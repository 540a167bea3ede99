"""Restricted unpickling of ``torch.save`` files: tensors and plain data, never code.

Every pickled checkpoint that this project reads goes through :func:`load_pickled`. It runs torch's
weights-only unpickler (``torch.load(weights_only=True)``), which builds tensors, containers,
numbers and strings and calls nothing else. What a file references beyond that is looked up by
name, before unpickling, in three lists:

* trusted: rebuilt for real, because these constructors only turn bytes into data.
  - numpy ``ndarray``, ``dtype``, the dtype classes and ``multiarray._reconstruct`` / ``scalar``
    (``numpy._core`` and numpy 1's ``numpy.core``): the numbers and arrays in mmengine's message
    hub and the official release's metrics. An object array holds only what this unpickler built.
  - whatever :func:`allow_globals` registers. ``mmseg_plugins.compat`` registers mmengine's
    ``HistoryBuffer`` and a ``getattr`` limited to its methods, so that ``--resume`` restores the
    message hub. ``groupvit`` never imports mmengine itself; the hook keeps that dependency out.
* known: expected in normal checkpoints, carry no weights; each becomes an inert
  :class:`UnpickledPlaceholder`, silently.
  - ``omegaconf.*``, ``typing.Any``, ``collections.defaultdict`` and the builtin types ``dict``,
    ``list``, ``int``, ``float``, ``str``, ``bool``: the official release's training config (an
    OmegaConf ``DictConfig`` with its node metadata, key / element types and resolver cache).
  - ``mmengine.logging.history_buffer.HistoryBuffer`` and ``builtins.getattr`` (its method
    references under pickle protocol 2): mmengine's message hub, when ``mmseg_plugins`` is not
    imported and has not registered the real class.
* anything else (``builtins.exec``, ``subprocess.call``, a class of some other project): an inert
  placeholder too, and one warning that names those classes. Nothing is imported or called.

A placeholder keeps the arguments and state the pickle gave it as plain data, so the tensors next to
it load as usual. Modules that torch refuses outright (``os``, ``posix``, ``nt``, ``sys``) cannot
even be placeholdered: such a file is refused with an :class:`~groupvit.errors.InputError` that
names the function. There is no fallback to full unpickling anywhere.
"""

from __future__ import annotations

import _compat_pickle
import functools
import importlib
import io
import pickletools
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import torch
from torch._utils import IMPORT_MAPPING, NAME_MAPPING

from groupvit.errors import InputError

__all__ = ["UnpickledPlaceholder", "allow_globals", "load_pickled", "pickle_globals"]

# torch's own refusal list (torch._weights_only_unpickler._blocklisted_modules): no allow-list entry
# can open these, so a file that names them is refused instead of placeholdered.
_BLOCKED_MODULES = ("os", "posix", "nt", "sys")

_KNOWN_PREFIXES = ("omegaconf.",)
_KNOWN = frozenset(
    {
        "typing.Any",
        "collections.defaultdict",
        *(f"builtins.{t}" for t in ("dict", "list", "int", "float", "str", "bool")),
        "mmengine.logging.history_buffer.HistoryBuffer",
        "builtins.getattr",
    }
)

_registered: dict[str, Callable[..., Any]] = {}
# torch's allow-list is process-wide; one load at a time adds and removes its entries.
_load_lock = threading.Lock()


def allow_globals(entries: Iterable[Callable[..., Any] | tuple[Callable[..., Any], str]]) -> None:
    """Trust ``entries`` (a class / function, or ``(object, "module.name")``) in every later load.

    For packages that ``groupvit`` must not import (``mmseg_plugins.compat`` registers mmengine's
    ``HistoryBuffer`` here). Same form as ``torch.serialization.add_safe_globals``.
    """
    for entry in entries:
        _registered[_entry_name(entry)] = entry[0] if isinstance(entry, tuple) else entry


@functools.cache
def _numpy_globals() -> dict[str, Any]:
    import numpy as np

    found: dict[str, Any] = {"numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype}
    # numpy 2 moved the pickling helpers to numpy._core; files written with numpy 1 name numpy.core
    for module_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in ("_reconstruct", "scalar"):
            if hasattr(module, name):
                found[f"{module_name}.{name}"] = getattr(module, name)
    dtypes = getattr(np, "dtypes", None)  # np.dtypes.Float64DType, ... (what np.dtype pickles as)
    for name in dir(dtypes) if dtypes is not None else ():
        if name.endswith("DType"):
            found[f"numpy.dtypes.{name}"] = getattr(dtypes, name)
    return found


def _entry_name(entry: Callable[..., Any] | tuple[Callable[..., Any], str]) -> str:
    return entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"


def _trusted() -> dict[str, Any]:
    return {**_numpy_globals(), **_registered}


class UnpickledPlaceholder:
    """Stands in for a pickled object (or class, or function) that was not unpickled.

    ``args`` and ``state`` hold what the pickle passed to its constructor and ``__setstate__``,
    as plain data; the original is never imported or called. ``qualified_name`` names it.
    """

    qualified_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> UnpickledPlaceholder:
        obj = super().__new__(cls)
        obj.args, obj.state = args, None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<{self.qualified_name}, not unpickled>"


def _placeholder_type(qualified_name: str) -> type[UnpickledPlaceholder]:
    # named so that torch's own errors about it (e.g. "Can only SETITEM for dict ... but got <class
    # ...>") say both what it is and what it stands for
    name = f"UnpickledPlaceholder[{qualified_name}]"
    return type(name, (UnpickledPlaceholder,), {"qualified_name": qualified_name, "__module__": __name__})


def _globals_in(stream: IO[bytes]) -> Iterator[tuple[str, str]]:
    """``(module, name)`` of every GLOBAL opcode of one pickle, read up to its STOP."""
    for opcode, arg, _ in pickletools.genops(stream):
        if opcode.name == "GLOBAL":
            module, name = arg.split(" ", 1)
            yield module, name
        elif opcode.name == "STACK_GLOBAL":  # protocol 4+; torch's unpickler reads protocol 2 only
            raise InputError("uses pickle protocol 4 or later, which torch's weights-only loader cannot read")


def pickle_globals(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` of everything the pickle in a ``torch.save`` file would import.

    Reads the opcodes only (nothing is built). Handles the zip format (torch >= 1.6) and the
    legacy one, whose object is the fourth of its consecutive pickles.
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            records = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if any(n.endswith("/constants.pkl") for n in archive.namelist()):
                raise InputError("is a TorchScript archive (torch.jit.save), not a checkpoint of weights")
            if len(records) != 1:
                raise InputError("is a zip archive but not a torch.save file (it has no data.pkl)")
            return list(_globals_in(io.BytesIO(archive.read(records[0]))))
    found: list[tuple[str, str]] = []
    with open(path, "rb") as f:
        if f.read(4) == b"PK\x03\x04":
            raise InputError(
                "is a damaged zip archive (no central directory): the download or copy was cut short"
            )
        f.seek(0)
        for _ in range(4):  # magic number, protocol version, system info, then the object
            found += _globals_in(f)
    return found


def _torch_name(module: str, name: str) -> str:
    """The name torch's weights-only unpickler looks the global up by (Python 2 names mapped)."""
    if (module, name) in NAME_MAPPING:
        module, name = NAME_MAPPING[(module, name)]
    elif module in IMPORT_MAPPING:
        module = IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _display_name(module: str, name: str) -> str:
    """The name a full unpickler would import: pickle protocol 2 writes Python 2 names
    (``__builtin__ exec``, ``commands call`` for ``subprocess.call``)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _is_known(name: str) -> bool:
    return name in _KNOWN or name.startswith(_KNOWN_PREFIXES)


def _torch_defaults() -> set[str]:
    # what torch.serialization.get_unsafe_globals_in_checkpoint compares against; private, so a
    # torch that renames it makes every name look foreign (placeholdered, loudly), never trusted
    from torch import _weights_only_unpickler

    getter = getattr(_weights_only_unpickler, "_get_allowed_globals", None)
    return set(getter()) if getter is not None else set()


def load_pickled(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with the trusted / known / placeholder lists above.

    Raises :class:`~groupvit.errors.InputError` naming the file when it references a module torch
    refuses outright, or when the weights-only unpickler cannot rebuild it (a corrupt file, a pickle
    protocol above 2, a placeholder used as a ``dict`` / ``list`` subclass).
    """
    path = Path(path)
    try:
        found = pickle_globals(path)
    except InputError as e:
        raise InputError(f"{path} {e}") from None
    except (ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:  # what pickletools / zipfile raise
        raise InputError(f"{path} is not a readable torch.save file ({type(e).__name__}: {e})") from None
    names = {_torch_name(m, n): _display_name(m, n) for m, n in found}
    blocked = sorted({shown for name, shown in names.items() if name.split(".")[0] in _BLOCKED_MODULES})
    if blocked:
        raise InputError(
            f"{path} refused: its pickle calls {', '.join(blocked)} (a module no checkpoint needs); "
            "this is not a plain checkpoint, do not load it"
        )
    already = set(torch.serialization.get_safe_globals())  # add_safe_globals calls elsewhere in the process
    allowed = _torch_defaults() | {_entry_name(e) for e in already}
    trusted = _trusted()
    foreign = {name: shown for name, shown in names.items() if name not in allowed and name not in trusted}
    # all trusted entries, named in the file or not: BUILD checks the type of what a REDUCE returned
    # (np.dtype("f8") is a numpy.dtypes.Float64DType, which no file names)
    entries = [(obj, name) for name, obj in trusted.items()]
    entries += [(_placeholder_type(shown), name) for name, shown in foreign.items()]
    entries = [e for e in entries if e not in already]
    with _load_lock, torch.serialization.safe_globals(entries):
        try:
            obj = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:  # the file is at fault: malformed data reaching an allowed rebuilder
            reason = _first_line(e)
            raise InputError(f"{path} cannot be unpickled safely ({type(e).__name__}: {reason})") from e
    refused = sorted(shown for name, shown in foreign.items() if not _is_known(name))
    if refused:
        warnings.warn(
            f"{path}: loaded the tensors; kept inert placeholders instead of unpickling "
            f"{', '.join(refused)} (nothing of them was imported or called)",
            stacklevel=2,
        )
    return obj


def _first_line(error: BaseException) -> str:
    """The informative line of an error; torch's weights-only errors wrap it in a long explanation."""
    text = str(error)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
