"""The one exception type for bad user input.

Library code raises :class:`InputError` (a ``ValueError``, so ``except ValueError`` still works)
when the problem is in what the user gave it (a file, a flag, a config value), with a one-line
message that names the problem and, where known, the fix. Command-line tools catch it with
:func:`report_input_errors` and print that line without a traceback; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

__all__ = ["InputError", "report_input_errors"]

_F = TypeVar("_F", bound=Callable[..., int])


class InputError(ValueError):
    """Bad input from the user; ``str(error)`` is one line naming the problem and the fix."""


def report_input_errors(prog: str) -> Callable[[_F], _F]:
    """Decorate a CLI ``main() -> int``: an :class:`InputError` (or a missing file) becomes
    ``"<prog>: error: <message>"`` on stderr and exit status 2."""

    def decorate(main: _F) -> _F:
        @functools.wraps(main)
        def wrapped(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except (InputError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
                message = " ".join(str(e).split()) if isinstance(e, InputError) else str(e)
                print(f"{prog}: error: {message}", file=sys.stderr)
                return 2

        return wrapped  # type: ignore[return-value]

    return decorate
