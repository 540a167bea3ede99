"""Zero-shot mIoU of the refinements on a synthetic val folder, each variant on the same images.

    python tools/eval_refinements.py --data data/tune --checkpoint checkpoints/groupvit_tiny_synthetic.pth \
        --variant paper --variant pamr=10 --variant soft --variant "scales=0.75,1,1.25;flip" --out table.json

A variant is ``;``-separated ``key=value`` items (``paper`` alone: the protocol as published):
``pamr=T``, ``dilations=1,2,4``, ``soft``, ``scales=0.75,1,1.25``, ``flip``, ``templates=imagenet``,
``class_file=PATH`` (label order; its background line makes background a text class), ``bg_thresh=X``.
Images load at the preset's short side (``EvalTransform``); labels are compared at their own size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from groupvit.class_file import read_class_file
from groupvit.cli.models import load_model
from groupvit.config import RefineConfig
from groupvit.errors import InputError, report_input_errors
from groupvit.group_analysis import confusion_matrix, iou_per_class
from groupvit.preprocess import EvalTransform
from groupvit.zero_shot import ZeroShotSegmenter

_FLOATS = {"scales": "scales", "dilations": "pamr_dilations"}


def parse_variant(text: str) -> tuple[dict, dict]:
    """``"pamr=10;soft"`` -> (RefineConfig fields, segmenter keyword arguments)."""
    refine: dict = {}
    options: dict = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        key, _, value = item.partition("=")
        if key == "paper":
            continue
        if key == "pamr":
            refine["pamr_iterations"] = int(value)
        elif key in _FLOATS:
            refine[_FLOATS[key]] = tuple(float(v) if key == "scales" else int(v) for v in value.split(","))
        elif key in ("soft", "flip"):
            refine["soft_groups" if key == "soft" else "flip"] = True
        elif key in ("templates", "class_file"):
            options[key] = value
        elif key == "bg_thresh":
            options[key] = float(value)
        else:
            raise InputError(f"unknown variant item {item!r} in {text!r}")
    return refine, options


def load_split(root: Path, short_side: int) -> tuple[list[torch.Tensor], list[torch.Tensor], list[str]]:
    """Images [3, h, w] (normalised), labels [H, W] and class names of ``root/val``."""
    classes = (root / "val" / "classes.txt").read_text().split()
    images, labels = [], []
    transform = EvalTransform(short_side)
    for path in sorted((root / "val" / "img_dir" / "val").glob("*.png")):
        images.append(transform(path))
        mask = np.asarray(Image.open(root / "val" / "ann_dir" / "val" / path.name))
        labels.append(torch.from_numpy(mask.astype(np.int64)))
    if not images:
        raise InputError(f"no images under {root}/val/img_dir/val")
    return images, labels, classes


def build(model: torch.nn.Module, classes: list[str], variant: str, bg_thresh: float) -> ZeroShotSegmenter:
    refine, options = parse_variant(variant)
    templates = options.get("templates", "simple")
    thresh = options.get("bg_thresh", bg_thresh)
    if "class_file" not in options:
        return ZeroShotSegmenter(
            model, classes[1:], templates=templates, bg_thresh=thresh, refine=RefineConfig(**refine)
        )
    vocabulary = read_class_file(options["class_file"])
    if len(vocabulary.names) != len(classes):
        raise InputError(
            f"{options['class_file']}: {len(vocabulary.names)} classes, the data has {len(classes)}"
        )
    text_background = len(vocabulary.synonyms[0]) > 1  # background synonyms: a text class, no threshold
    start = 0 if text_background else 1
    return ZeroShotSegmenter(
        model,
        vocabulary.names[start:],
        templates=templates,
        background=not text_background,
        bg_thresh=thresh,
        synonyms=vocabulary.synonyms[start:],
        refine=RefineConfig(**refine),
    )


def evaluate(segmenter: ZeroShotSegmenter, images: list, labels: list, num_classes: int, batch: int) -> dict:
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    start = time.perf_counter()
    for i in range(0, len(images), batch):
        pixels = torch.stack(images[i : i + batch])
        target = torch.stack(labels[i : i + batch])
        pred = segmenter.predict_labels(pixels, output_size=tuple(target.shape[-2:]))
        confusion += confusion_matrix(pred, target, num_classes)
    seconds = time.perf_counter() - start
    ious = iou_per_class(confusion)
    return {
        "miou": float(ious.nanmean()),
        "per_class": ious.tolist(),
        "seconds_per_image": seconds / len(images),
    }


@report_input_errors("eval_refinements.py")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="a synthetic data root (with val/)")
    parser.add_argument("--checkpoint", default="checkpoints/groupvit_tiny_synthetic.pth")
    parser.add_argument("--variant", action="append", default=None, help="repeatable; default: paper")
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--out", type=Path, help="JSON file for the results")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    model = load_model(args.checkpoint)
    inference = model.config.inference
    images, labels, classes = load_split(args.data, inference.short_side)
    images, labels = images[: args.limit], labels[: args.limit]
    results = {}
    for variant in args.variant or ["paper"]:
        segmenter = build(model, classes, variant, inference.bg_thresh)
        results[variant] = evaluate(segmenter, images, labels, len(classes), args.batch)
        print(f"{variant:40s} mIoU {results[variant]['miou']:6.2f}  "
              f"{1000 * results[variant]['seconds_per_image']:7.1f} ms/image", flush=True)  # fmt: skip
    if args.out:
        args.out.write_text(
            json.dumps({"data": str(args.data), "classes": classes, "results": results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
