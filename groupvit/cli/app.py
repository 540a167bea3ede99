"""``groupvit-app``: segment and ground your own images in the browser (``pip install groupvit[app]``).

    groupvit-app                                   # the shipped synthetic model, http://127.0.0.1:7860
    groupvit-app --checkpoint gcc_yfcc --port 8080 # GroupViT-S weights (downloaded once)

Starts on ``checkpoints/groupvit_tiny_synthetic.pth`` (in the repository, no download). The page
takes an image (upload or an example), a class list or a free caption, and shows the overview
(input, the groups of every stage, the prediction with a legend), a stage selector, the labels
with their pixel shares, and downloads of the label map PNG and the JSON (``groupvit-demo``'s
``<stem>.json``).
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from groupvit.cli.args import at_least
from groupvit.errors import InputError, report_input_errors
from groupvit.presets import list_models

if TYPE_CHECKING:
    import gradio

__all__ = ["DEFAULT_CHECKPOINT", "main", "parse_args", "start"]

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "groupvit_tiny_synthetic.pth"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="groupvit-app", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint",
        default=str(DEFAULT_CHECKPOINT),
        help="weights: a file, a URL or a released tag (default: the shipped synthetic model)",
    )
    parser.add_argument(
        "--model", choices=list_models(), help="model preset (default: read off the checkpoint)"
    )
    parser.add_argument("--port", type=at_least(0), default=7860, help="port (default 7860; 0: a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)
    if args.port > 65535:
        parser.error(f"--port {args.port}: must be at most 65535")
    return args


def start(args: argparse.Namespace, block: bool = True) -> gradio.Blocks:
    """Load the model, build the page and serve it until interrupted; ``block=False`` returns the
    page at once (served from a thread; ``page.local_url``, ``page.close()``)."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise InputError("the app needs Gradio: pip install 'groupvit[app]' (gradio>=6,<7)") from None
    from groupvit.app.engine import load_app_model
    from groupvit.app.examples import write_examples
    from groupvit.app.ui import build_app, launch_options

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {args.device}: CUDA is not available here (use --device cpu)")
    app_model = load_app_model(args.checkpoint, args.model, args.device)
    work = work_dir()
    examples = write_examples(work / "examples")
    page = build_app(app_model, examples, work / "downloads")
    print(f"groupvit-app: {app_model.name} from {app_model.checkpoint}", file=sys.stderr)
    options = dict(
        server_name=args.host,
        prevent_thread_lock=not block,
        quiet=not block,
        **launch_options(work / "downloads", work / "examples"),
    )
    for attempt in range(3):
        try:
            page.launch(server_port=args.port or _free_port(args.host), **options)
            break
        except ValueError as e:
            # Gradio asks its own page once, with a 3 s timeout, before it returns; on a loaded
            # machine that one request can miss it, and Gradio then stops with this error.
            if "localhost is not accessible" not in str(e) or attempt == 2:
                raise
            page.close()
    return page


def work_dir() -> Path:
    """A new folder for the page's examples and downloads, removed when the process exits (the
    downloads are copies the browser has fetched; nothing a user made lives there)."""
    work = Path(tempfile.mkdtemp(prefix="groupvit-app-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    return work


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@report_input_errors("groupvit-app")
def main(argv: Sequence[str] | None = None) -> int:
    start(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
