"""``groupvit-export``: zero-shot segmentation with a fixed vocabulary as one ONNX graph.

    groupvit-export --vocab "apple, car, tree" --out work_dirs/synthetic.onnx
    groupvit-export --checkpoint gcc_yfcc --dataset voc --size 448 448 --out voc.onnx

The graph takes ImageNet-normalised float32 images [B, 3, H, W] of any size with H, W at least the
patch size (resize them to the preset's short side first, as ``EvalTransform`` does: what the model
was evaluated at) and returns ``labels`` [B, H, W] int64 (0 = background) and ``group_scores``
[B, G, C] (a pixel's scores are its final group's row). ``--size`` is only the example input it is
traced with. The class names, the size and the
threshold are in the file's metadata (``groupvit.export.read_spec``). An existing file is kept
unless ``--force``. docs/export.md has what is tested.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from groupvit.cli.args import at_least, unit_interval
from groupvit.cli.vocabulary import CLASS_LISTS, build_class_names
from groupvit.errors import InputError, report_input_errors
from groupvit.presets import list_models

__all__ = ["main"]

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "groupvit_tiny_synthetic.pth"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="groupvit-export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument(
        "--checkpoint", default=str(DEFAULT_CHECKPOINT), help="weights (default: the shipped synthetic model)"
    )
    parser.add_argument(
        "--model", choices=list_models(), help="model preset (default: read off the checkpoint)"
    )
    parser.add_argument("--vocab", help='comma-separated class names, e.g. "cat,dog,grass"')
    parser.add_argument("--dataset", choices=sorted(CLASS_LISTS), help="start from this dataset's classes")
    parser.add_argument(
        "--size", type=at_least(1), nargs=2, metavar=("H", "W"), help="input size (default: short side)"
    )
    parser.add_argument(
        "--bg-thresh", type=unit_interval, help="background threshold (default: the preset's)"
    )
    parser.add_argument("--top-k", type=at_least(1), default=5, help="image-level classes kept (default 5)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    args = parser.parse_args(argv)
    if args.vocab is None and args.dataset is None:
        parser.error("give a vocabulary with --vocab and/or a class list with --dataset")
    if args.out.exists() and not args.force:
        parser.error(f"--out {args.out} exists; pass --force to overwrite it")
    try:
        args.class_names = build_class_names(args.vocab, args.dataset)
    except InputError as e:
        parser.error(str(e))
    return args


@report_input_errors("groupvit-export")
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from groupvit.cli.models import load_model
    from groupvit.export import export_onnx
    from groupvit.presets import get_model_config
    from groupvit.zero_shot import ZeroShotSegmenter

    model = load_model(args.checkpoint, args.model)
    preset = args.model or next(n for n in list_models() if get_model_config(n) == model.config)
    inference = model.config.inference
    segmenter = ZeroShotSegmenter(
        model,
        args.class_names[1:],
        bg_thresh=inference.bg_thresh if args.bg_thresh is None else args.bg_thresh,
        top_k=args.top_k,
    )
    size = tuple(args.size) if args.size else (inference.short_side, inference.short_side)
    spec = export_onnx(segmenter, preset, size, args.out, force=args.force)
    print(
        f"wrote {args.out}: {preset}, {len(spec.class_names)} classes, input [B, 3, H, W], H, W >= {spec.min_side}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
