"""Segment your own images with your own words and draw what GroupViT grouped.

    python tools/demo.py photo.jpg photos/ --vocab "cat,dog,grass" --checkpoint gcc_yfcc \
        --vis overview input_pred_label all_groups --out work_dirs/demo

Writes ``OUT/<image stem>_<name>.png`` for every picture of every ``--vis`` mode
(``all_groups`` writes ``_stage1.png``, ``_stage2.png``, ...). ``--vocab`` alone is the
class list; with ``--dataset`` it is added to that dataset's classes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

import groupvit
from groupvit.class_names import DATASET_BG_THRESH, DATASET_CLASSES
from groupvit.data import synthetic
from groupvit.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from groupvit.sliding_window import resize_scores
from groupvit.visualization import GROUP_MODES, MODES, render

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm"})
DEFAULT_MODES = ("input_pred_label", "all_groups", "overview")
CHECKPOINT_SUFFIXES = frozenset({".pth", ".pt", ".bin", ".ckpt", ".safetensors"})
# The benchmarks' class lists, plus the procedural scenes the synthetic model is trained on.
CLASS_LISTS: dict[str, tuple[str, ...]] = {**DATASET_CLASSES, "synthetic": synthetic.CLASSES}
# synthetic: the value in configs/groupvit/groupvit_tiny_synthetic.py (chosen on a tuning split)
BG_THRESH: dict[str, float] = {**DATASET_BG_THRESH, "synthetic": 0.95}
# Inference short side as a multiple of the model's training size: 2 as in the paper (224 -> 448);
# synthetic: the config's test_size (64 -> 320 px, chosen on a tuning split)
TEST_SCALE: dict[str, int] = {"synthetic": 5}


class DemoError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
    parser.add_argument("--model", default="groupvit_s", help="model preset (default: groupvit_s)")
    parser.add_argument(
        "--vis", nargs="+", default=list(DEFAULT_MODES), choices=MODES, metavar="MODE",
        help=f"pictures to write, any of: {', '.join(MODES)} (default: {' '.join(DEFAULT_MODES)})",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("work_dirs/demo"), help="output folder")
    parser.add_argument(
        "--bg-thresh", type=float, help="background threshold (default: dataset's, else 0.95)"
    )
    parser.add_argument(
        "--no-background", action="store_true", help="no background class: every pixel gets a name"
    )
    parser.add_argument("--templates", default="simple", help="prompt templates: simple, subset or imagenet")
    parser.add_argument(
        "--short-side",
        type=int,
        help="inference short side (default: twice the training size, 448 for GroupViT-S; "
        "5 times with --dataset synthetic)",
    )
    parser.add_argument(
        "--mode", choices=("slide", "whole"), default="slide", help="prediction inference mode"
    )
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda"
    )
    args = parser.parse_args(argv)
    if args.checkpoint is None and not args.random_init:
        parser.error("--checkpoint is required (or pass --random-init to try the pipeline without weights)")
    if args.checkpoint is not None and args.random_init:
        parser.error("--checkpoint and --random-init are exclusive")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here (use --device cpu)")
    if args.vocab is None and args.dataset is None:
        parser.error("give a vocabulary with --vocab and/or a class list with --dataset")
    try:
        args.class_names = build_class_names(args.vocab, args.dataset, background=not args.no_background)
    except DemoError as e:
        parser.error(str(e))
    if args.checkpoint is not None and not checkpoint_reachable(args.checkpoint):
        parser.error(f"checkpoint not found: {args.checkpoint}")
    return args


def build_class_names(vocab: str | None, dataset: str | None, background: bool = True) -> list[str]:
    """Class names, "background" first when ``background``; ``vocab`` is added to ``dataset``'s list.

    Duplicates (ignoring case and spacing) and a user-written "background" are dropped.
    """
    names: list[str] = []
    if dataset is not None:
        names.extend(CLASS_LISTS[dataset][1:])
    if vocab is not None:
        words = [w.strip() for w in vocab.split(",") if w.strip()]
        if not words:
            raise DemoError(f"empty vocabulary: --vocab {vocab!r} holds no class name")
        names.extend(words)
    unique: dict[str, str] = {}
    for name in names:
        key = " ".join(name.lower().split())
        if key != "background":
            unique.setdefault(key, name)
    if not unique:
        raise DemoError("empty vocabulary: no class name besides 'background'")
    return (["background"] if background else []) + list(unique.values())


def checkpoint_reachable(checkpoint: str) -> bool:
    """False only for what is clearly a local path that does not exist (tags and URLs pass)."""
    if checkpoint.startswith(("http://", "https://")) or Path(checkpoint).exists():
        return True
    path = Path(checkpoint)
    return not (path.suffix in CHECKPOINT_SUFFIXES or len(path.parts) > 1)


def collect_images(paths: Sequence[Path]) -> list[Path]:
    """Files as given, plus the image files directly inside each folder (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not inside:
                raise DemoError(f"no images in folder {path}")
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            raise DemoError(f"image not found: {path}")
    return found


def load_image(path: Path) -> Image.Image:
    """RGB image with its EXIF orientation applied; ``DemoError`` naming the file otherwise."""
    try:
        with Image.open(path) as image:
            return ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise DemoError(f"cannot read image {path}: {e}") from None


def check_images(paths: Sequence[Path]) -> None:
    """Fail before the model loads if a file is not an image at all (its header does not parse)."""
    for path in paths:
        try:
            with Image.open(path):
                pass
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise DemoError(f"cannot read image {path}: {e}") from None


def preprocess(image: Image.Image, short_side: int) -> torch.Tensor:
    """PIL RGB -> ``[1, 3, h, w]`` ImageNet-normalised, resized (bilinear) so ``min(h, w) = short_side``."""
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    height, width = pixels.shape[-2:]
    scale = short_side / min(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


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


def build_segmenter(args: argparse.Namespace) -> tuple[groupvit.ZeroShotSegmenter, int]:
    """The zero-shot segmenter on ``args.device`` and the inference short side."""
    try:
        model = groupvit.create_model(args.model, checkpoint=args.checkpoint)
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        raise DemoError(f"could not build {args.model} from checkpoint {args.checkpoint}: {e}") from None
    model = model.to(args.device).eval()
    trained_size = model.config.vision.image_size
    # the paper tests its 224-px model at 448: twice the training size unless the dataset says otherwise
    short_side = args.short_side or TEST_SCALE.get(args.dataset, 2) * trained_size
    has_bg = not args.no_background
    bg_thresh = args.bg_thresh
    if bg_thresh is None:
        bg_thresh = BG_THRESH.get(args.dataset, 0.95)
    segmenter = groupvit.ZeroShotSegmenter(
        model,
        args.class_names[1:] if has_bg else args.class_names,
        templates=args.templates,
        background=has_bg,
        bg_thresh=bg_thresh,
        mode=args.mode,
        window=short_side,
        stride=max(1, short_side // 2),
    )
    return segmenter, short_side


def run(args: argparse.Namespace) -> None:
    paths = collect_images(args.images)
    check_images(paths)
    segmenter, short_side = build_segmenter(args)
    args.out.mkdir(parents=True, exist_ok=True)
    background_index = None if args.no_background else 0
    for path, stem in zip(tqdm(paths, desc="demo", unit="image"), output_stems(paths)):
        image = load_image(path)
        pixels = preprocess(image, short_side).to(args.device)
        scores = resize_scores(segmenter.predict(pixels).scores, (image.height, image.width))
        labels = scores.argmax(dim=1)[0]
        group_maps = (
            [g[0] for g in segmenter.group_maps(pixels)] if GROUP_MODES.intersection(args.vis) else []
        )
        pictures = render(
            image, labels, group_maps, args.class_names, args.vis, background_index=background_index
        )
        for name, picture in pictures.items():
            picture.save(args.out / f"{stem}_{name}.png")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except DemoError as e:
        print(f"demo.py: error: {e}", file=sys.stderr)
        return 1
    print(f"pictures written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
