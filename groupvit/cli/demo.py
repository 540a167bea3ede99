"""Segment your own images with your own words and draw what GroupViT grouped.

    groupvit-demo photo.jpg photos/ --vocab "cat,dog,grass" --checkpoint gcc_yfcc \
        --vis overview input_pred_label all_groups --out work_dirs/demo

Writes ``OUT/<image stem>_<name>.png`` for every picture of every ``--vis`` mode
(``all_groups`` writes ``_stage1.png``, ``_stage2.png``, ...). ``--vocab`` alone is the
class list; with ``--dataset`` it is added to that dataset's classes.

An image that cannot be decoded (not an image, truncated) is skipped with a line naming it and
the run goes on; the exit status is then 1. Very large or elongated images get their groups
(and a ``--mode whole`` prediction) computed at a smaller size, with a line saying so.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

import groupvit
from groupvit import preprocess as preprocess_module
from groupvit.class_file import read_class_file
from groupvit.class_names import DATASET_BG_THRESH
from groupvit.cli.args import preset_override, unit_interval
from groupvit.cli.models import load_model
from groupvit.cli.records import summary_record
from groupvit.cli.vocabulary import CLASS_LISTS, build_class_names
from groupvit.config import RefineConfig
from groupvit.errors import InputError, report_input_errors
from groupvit.preprocess import (
    DECODE_ERRORS,
    MAX_WHOLE_TOKENS,
    EvalTransform,
    collect_images,
    whole_image_side,
)
from groupvit.presets import get_model_config
from groupvit.templates import TEMPLATE_SETS
from groupvit.visualization import GROUP_MODES, MODES, render

DEFAULT_MODES = ("input_pred_label", "all_groups", "overview")
CHECKPOINT_SUFFIXES = frozenset({".pth", ".pt", ".bin", ".ckpt", ".safetensors"})
# The benchmarks' background thresholds; other class lists take the preset's config.inference.bg_thresh
# (the synthetic model's, chosen on a tuning split).
BG_THRESH: dict[str, float] = dict(DATASET_BG_THRESH)


class UnreadableImage(InputError):
    """An image file that does not decode; the demo skips it, other tools stop on it."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read image {path}: {reason}")
        self.path, self.reason = path, reason


def parse_args(argv: Sequence[str] | None = None, prog: str = "groupvit-demo") -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("images", nargs="+", type=Path, help="image files and/or folders of images")
    parser.add_argument("--vocab", help='comma-separated class names, e.g. "cat,dog,grass"')
    parser.add_argument("--dataset", choices=sorted(CLASS_LISTS), help="start from this dataset's classes")
    parser.add_argument(
        "--checkpoint", help="weights: a file, a URL or a released tag (gcc_yfcc, gcc_redcaps)"
    )
    parser.add_argument(
        "--random-init", action="store_true", help="run without weights (pipeline check only)"
    )
    parser.add_argument(
        "--model",
        choices=groupvit.list_models(),
        help="model preset (default: read off the checkpoint; groupvit_s with --random-init)",
    )
    parser.add_argument(
        "--override",
        nargs="+",
        type=preset_override,
        default=[],
        metavar="KEY=VALUE",
        help="preset fields the checkpoint was trained with (its config's model.model_overrides), "
        "e.g. vision.num_group_tokens=[32] vision.num_output_groups=[32]; needs --model",
    )
    parser.add_argument(
        "--vis", nargs="+", default=list(DEFAULT_MODES), choices=MODES, metavar="MODE",
        help=f"pictures to write, any of: {', '.join(MODES)} (default: {' '.join(DEFAULT_MODES)})",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("work_dirs/demo"), help="output folder")
    parser.add_argument(
        "--bg-thresh",
        type=unit_interval,
        help="background threshold in [0, 1] (default: dataset's, else 0.95)",
    )
    parser.add_argument(
        "--min-area",
        type=unit_interval,
        default=0.01,
        help="input_pred_label names segments of at least this share of the image (default 0.01), "
        "and the largest segment of every class",
    )
    parser.add_argument(
        "--no-background", action="store_true", help="no background class: every pixel gets a name"
    )
    parser.add_argument(
        "--templates",
        default="simple",
        choices=sorted(TEMPLATE_SETS),
        help="prompt templates (default: simple)",
    )
    parser.add_argument(
        "--prompts",
        type=Path,
        help="tuned prompts (.safetensors of prompt tuning) for exactly these classes and this checkpoint",
    )
    parser.add_argument(
        "--short-side",
        type=int,
        help="inference short side in pixels, at least the model's patch size (default: twice the "
        "training size, 448 for GroupViT-S; 5 times with --dataset synthetic)",
    )
    parser.add_argument(
        "--mode", choices=("slide", "whole"), default="slide", help="prediction inference mode"
    )
    parser.add_argument(
        "--class-file",
        type=Path,
        help="class file, one class per line ('name: syn1, syn2'); a first line 'background: sky, "
        "wall' scores background as a text class (no threshold); instead of --vocab / --dataset",
    )
    refine = parser.add_argument_group("test-time refinements (docs/refinements.md; all off by default)")
    refine.add_argument("--pamr", type=int, default=0, metavar="T", help="PAMR iterations (TCL: 10)")
    refine.add_argument("--soft-groups", action="store_true", help="pixels mix the rows of all groups")
    refine.add_argument("--scales", type=float, nargs="+", default=[1.0], help="test-time scales")
    refine.add_argument("--flip", action="store_true", help="also score the flipped image")
    refine.add_argument(
        "--shifts",
        type=int,
        nargs="+",
        default=[0],
        metavar="PX",
        help="also score the image padded by every (rows, columns) pair of these pixels, e.g. 0 4",
    )
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda"
    )
    args = parser.parse_args(argv)
    if args.checkpoint is None and not args.random_init:
        parser.error("--checkpoint is required (or pass --random-init to try the pipeline without weights)")
    if args.checkpoint is not None and args.random_init:
        parser.error("--checkpoint and --random-init are exclusive")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device {args.device}: not a device (use cpu or cuda)")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here (use --device cpu)")
    if args.class_file is not None and (args.vocab is not None or args.dataset is not None):
        parser.error("--class-file is the whole vocabulary: leave out --vocab and --dataset")
    if args.vocab is None and args.dataset is None and args.class_file is None:
        parser.error("give a vocabulary with --vocab and/or a class list with --dataset, or a --class-file")
    try:
        args.refine = RefineConfig(
            pamr_iterations=args.pamr,
            soft_groups=args.soft_groups,
            scales=args.scales,
            flip=args.flip,
            shifts=args.shifts,
        )
    except InputError as e:
        parser.error(str(e))
    if args.bg_thresh is not None and args.no_background:
        parser.error("--bg-thresh has no effect with --no-background")
    if args.model is None and args.random_init:
        args.model = "groupvit_s"
    args.overrides = dict(args.override)
    if args.overrides and args.model is None:
        parser.error("--override needs --model, the preset it changes")
    if args.model is not None:
        try:
            get_model_config(args.model, **args.overrides)
        except (KeyError, TypeError, ValueError) as e:
            parser.error(f"--override: {e.args[0] if e.args else e}")
        try:
            check_short_side(args.short_side, args.model, args.overrides)
        except InputError as e:
            parser.error(str(e))
    blocker = first_non_folder(args.out)
    if blocker is not None:
        where = "" if blocker == args.out else f": {blocker}"
        parser.error(f"--out {args.out}{where} is a file, not a folder")
    args.synonyms, args.text_background = None, False
    try:
        if args.class_file is None:
            args.class_names = build_class_names(args.vocab, args.dataset, background=not args.no_background)
        else:
            file_vocabulary(args)
    except InputError as e:
        parser.error(str(e))
    if args.checkpoint is not None and not checkpoint_reachable(args.checkpoint):
        parser.error(f"checkpoint not found: {args.checkpoint}")
    return args


def file_vocabulary(args: argparse.Namespace) -> None:
    """``args.class_names`` (label order, background first unless ``--no-background``), ``args.synonyms``
    (the texts of the classes the segmenter scores) and ``args.text_background`` from ``--class-file``."""
    vocabulary = read_class_file(args.class_file)
    names, synonyms = list(vocabulary.names), list(vocabulary.synonyms)
    if names[0].strip().lower() != "background":
        names, synonyms = ["background", *names], [("background",), *synonyms]
    args.text_background = len(synonyms[0]) > 1
    if args.text_background and args.no_background:
        raise InputError(f"{args.class_file} gives background synonyms: drop them or --no-background")
    if args.text_background and args.bg_thresh is not None:
        raise InputError(f"{args.class_file} scores background by its synonyms: --bg-thresh has no effect")
    if args.no_background:
        names, synonyms = names[1:], synonyms[1:]
    args.class_names = names
    args.synonyms = synonyms if args.text_background or args.no_background else synonyms[1:]


def first_non_folder(path: Path) -> Path | None:
    """``path`` or the first of its parents that exists and is not a folder (None if there is none)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def checkpoint_reachable(checkpoint: str) -> bool:
    """False only for what is clearly a local path that does not exist (tags and URLs pass)."""
    if checkpoint.startswith(("http://", "https://")) or Path(checkpoint).exists():
        return True
    path = Path(checkpoint)
    return not (path.suffix in CHECKPOINT_SUFFIXES or len(path.parts) > 1)


def load_image(path: Path) -> Image.Image:
    """:func:`groupvit.preprocess.load_image` of a file; :class:`UnreadableImage` when it does not decode."""
    try:
        return preprocess_module.load_image(path)
    except InputError as e:
        raise UnreadableImage(path, str(e).split(": ", 1)[-1]) from None


def check_images(paths: Sequence[Path]) -> tuple[list[Path], list[UnreadableImage]]:
    """Split ``paths``, before the model loads, into files whose header parses and files that are
    not images at all; when no file is an image, the first one's error is raised."""
    readable: list[Path] = []
    unreadable: list[UnreadableImage] = []
    for path in paths:
        try:
            with Image.open(path):
                readable.append(path)
        except DECODE_ERRORS as e:
            unreadable.append(UnreadableImage(path, str(e) or type(e).__name__))
    if not readable:
        more = f" (and {len(unreadable) - 1} more unreadable files)" if len(unreadable) > 1 else ""
        raise InputError(f"{unreadable[0]}{more}")
    return readable, unreadable


def preprocess(image: Image.Image, short_side: int) -> torch.Tensor:
    """PIL RGB -> ``[1, 3, h, w]`` ImageNet-normalised, short side ``short_side`` (:class:`EvalTransform`)."""
    return EvalTransform(short_side)(image)[None]


def output_stems(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique with ``_2``, ``_3``... when two images share one."""
    stems: list[str] = []
    used: set[str] = set()
    for path in paths:
        stem, n = path.stem, 2
        while stem in used:
            stem, n = f"{path.stem}_{n}", n + 1
        used.add(stem)
        stems.append(stem)
    return stems


def check_short_side(short_side: int | None, model_name: str, overrides: dict | None = None) -> None:
    """A ``--short-side`` below the preset's patch size leaves no patch: an :class:`InputError`."""
    patch = get_model_config(model_name, **(overrides or {})).vision.patch_size
    if short_side is not None and short_side < patch:
        raise InputError(f"--short-side {short_side}: must be at least {model_name}'s patch size, {patch} px")


def build_segmenter(args: argparse.Namespace) -> tuple[groupvit.ZeroShotSegmenter, int]:
    """The zero-shot segmenter on ``args.device`` and the inference short side.

    The preset is ``--model`` or, with a checkpoint, read off its shapes; the short side and the
    background threshold are the preset's (``config.inference``) unless given (``--dataset``
    brings its benchmark's threshold).
    """
    try:
        if args.checkpoint is None:
            model = groupvit.create_model(args.model, **args.overrides).to(args.device).eval()
        else:
            model = load_model(args.checkpoint, args.model, args.device, args.overrides)
    except RuntimeError as e:
        # the loader's word for weights that do not fit this preset, or a failed download
        raise InputError(f"checkpoint {args.checkpoint}: {str(e).splitlines()[0]}") from None
    name = args.model or next(n for n in groupvit.list_models() if get_model_config(n) == model.config)
    check_short_side(args.short_side, name, args.overrides)
    inference = model.config.inference
    short_side = args.short_side or inference.short_side
    has_bg = not args.no_background and not args.text_background
    bg_thresh = args.bg_thresh
    if bg_thresh is None:
        bg_thresh = BG_THRESH.get(args.dataset, inference.bg_thresh)
    found = "" if args.model else " (read off the checkpoint)"
    print(
        f"model {name}{found}, short side {short_side}, mode {args.mode}, bg_thresh {bg_thresh}",
        file=sys.stderr,
    )
    segmenter = groupvit.ZeroShotSegmenter(
        model,
        args.class_names[1:] if has_bg else args.class_names,
        templates=args.templates,
        synonyms=args.synonyms,
        refine=args.refine,
        background=has_bg,
        bg_thresh=bg_thresh,
        mode=args.mode,
        window=short_side,
        stride=max(1, short_side // 2),
        prompts=args.prompts,
    )
    return segmenter, short_side


def run(args: argparse.Namespace) -> tuple[int, int]:
    """Write every picture; returns (images drawn, images skipped)."""
    paths, unreadable = check_images(collect_images(args.images))
    for error in unreadable:
        print(f"skipping {error.path}: {error.reason}", file=sys.stderr)
    skipped = len(unreadable)
    segmenter, short_side = build_segmenter(args)
    patch = segmenter.model.config.vision.patch_size
    wants_groups = bool(GROUP_MODES.intersection(args.vis))
    args.out.mkdir(parents=True, exist_ok=True)
    background_index = None if args.no_background else 0
    drawn = 0
    for path, stem in zip(tqdm(paths, desc="demo", unit="image"), output_stems(paths)):
        try:
            image = load_image(path)
        except UnreadableImage as e:
            tqdm.write(f"skipping {e.path}: {e.reason}", file=sys.stderr)
            skipped += 1
            continue
        whole_side = whole_image_side((image.height, image.width), short_side, patch)
        if whole_side == 0 and (wants_groups or args.mode == "whole"):
            reason = f"{image.width}x{image.height} is too elongated for a whole-image pass"
            tqdm.write(f"skipping {path}: {reason} (over {MAX_WHOLE_TOKENS} patch tokens)", file=sys.stderr)
            skipped += 1
            continue
        pixels = preprocess(image, short_side).to(args.device)
        whole = pixels
        if whole_side != short_side and (wants_groups or args.mode == "whole"):
            whole = preprocess(image, whole_side).to(args.device)
            what = "groups" if args.mode == "slide" else "groups and prediction"
            tqdm.write(
                f"{path}: {what} computed at short side {whole_side}, not {short_side} (a whole-image pass "
                f"is limited to {MAX_WHOLE_TOKENS} patch tokens)",
                file=sys.stderr,
            )
        # labels without the dense [1, K + 1, H, W] scores (memory stays flat for a large --vocab) and,
        # from the same forward pass, the groups: the pictures of one image show one computation
        size = (image.height, image.width)
        if not wants_groups:
            labels, group_maps = segmenter.predict_labels(pixels, output_size=size)[0], []
        elif whole is pixels or args.mode == "whole":
            prediction = segmenter.predict_with_groups(whole, output_size=size)
            labels, group_maps = prediction.labels[0], [g[0] for g in prediction.group_maps]
        else:  # sliding windows at full size, the groups of a smaller whole image
            labels = segmenter.predict_labels(pixels, output_size=size)[0]
            group_maps = [g[0] for g in segmenter.group_maps(whole)]
        pictures = render(
            image,
            labels,
            group_maps,
            args.class_names,
            args.vis,
            background_index=background_index,
            min_label_area=args.min_area,
        )
        for name, picture in pictures.items():
            picture.save(args.out / f"{stem}_{name}.png")
        record = summary_record(path, labels, group_maps, args.class_names, short_side, args.mode)
        (args.out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        drawn += 1
    return drawn, skipped


@report_input_errors("groupvit-demo")
def main(argv: Sequence[str] | None = None) -> int:
    """0 when every image was drawn, 1 when some were skipped, 2 on a usage or input error."""
    args = parse_args(argv)
    drawn, skipped = run(args)
    summary = f"pictures of {drawn} images written to {args.out}"
    print(summary + (f"; {skipped} skipped (named above)" if skipped else ""), file=sys.stderr)
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
