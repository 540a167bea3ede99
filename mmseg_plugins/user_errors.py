"""One line, ``groupvit: error: <message>``, for user errors that end an mmseg / mmengine run.

``mim test mmseg CONFIG`` and ``mim train mmseg CONFIG`` run mmseg's own ``tools/test.py`` /
``tools/train.py``, not ours, so no ``report_input_errors`` wraps them. What they share with ours is
the config's ``custom_imports``, which import this package in that process: :func:`install` puts an
``excepthook`` there that turns the errors :func:`user_message` recognises into that line and exit
status 2, and leaves every other exception (a bug) its traceback.

mim runs the script in a subprocess and reports its failure with a traceback of its own
(``subprocess.CalledProcessError: ... returned non-zero exit status 2.``) after our line; nothing
in the script's process can change what mim prints afterwards.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
from types import TracebackType

from groupvit.errors import InputError

PROG = "groupvit"

# mmengine's registry re-raises an error of a constructor as the same type, prefixed with where it was
# built: "class `ImageTextPairs` in mmseg/datasets: <message>"
_REGISTRY_PREFIX = re.compile(r"^(?:class|function) `\w+` in [\w/.]+: ")
# --cfg-options test_cfg.mode=whole: mmengine's test loop gets the segmentor's option
_LOOP_KWARG = re.compile(r"(TestLoop|ValLoop)\.__init__\(\) got an unexpected keyword argument '(\w+)'")


def original_message(error: BaseException) -> str:
    """The message an error had where it was raised, without what wrapped it on the way: a
    DataLoader worker's error reaches the main process as "Caught X in DataLoader worker process N.
    Original Traceback ...", whose last line is ``<module>.X: <message>``; mmengine's registry
    prefixes the class it was building."""
    text = str(error)
    if "Original Traceback" in text:
        text = text.strip().splitlines()[-1].split(f"{type(error).__name__}: ", 1)[-1]
    while _REGISTRY_PREFIX.match(text):
        text = _REGISTRY_PREFIX.sub("", text, count=1)
    return " ".join(text.split())


def loop_option_error(error: TypeError) -> InputError | None:
    """The fix for a ``test_cfg.<key>`` / ``val_cfg.<key>`` that mmengine's loop does not take, or None."""
    loop = _LOOP_KWARG.search(str(error))
    if loop is None:
        return None
    key = "test_cfg" if loop.group(1) == "TestLoop" else "val_cfg"
    return InputError(
        f"{key}.{loop.group(2)} is not an option of mmengine's {loop.group(1)}; the segmentor's "
        f"test mode is model.test_cfg (e.g. --cfg-options model.test_cfg.{loop.group(2)}=...)"
    )


def user_message(error: BaseException) -> str | None:
    """The one-line message of a user error (bad input, a missing file or folder), None for a bug."""
    if isinstance(error, TypeError):
        fix = loop_option_error(error)
        return None if fix is None else str(fix)
    if isinstance(error, (InputError, FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return original_message(error)
    return None


def _excepthook(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
    message = user_message(error)
    if message is None:
        sys.__excepthook__(kind, error, traceback)
        return
    sys.stdout.flush()
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    atexit._run_exitfuncs()  # what a normal exit runs (mmengine's log files are flushed there)
    os._exit(2)  # an uncaught exception exits 1, fixed by Python; a user error is 2, as argparse's


def install() -> None:
    """Route uncaught user errors of this process through :func:`_excepthook`; once, and only over
    Python's default hook (an interactive shell or a debugger keeps its own)."""
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _excepthook
