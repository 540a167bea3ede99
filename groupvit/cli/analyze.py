"""Are the groups wrong or their names? Score a model's groups against ground-truth label maps.

    groupvit-analyze data/synthetic/val/img_dir/val --ann-dir data/synthetic/val/ann_dir/val \
        --dataset synthetic --model groupvit_tiny_synthetic --checkpoint checkpoints/groupvit_tiny_synthetic.pth

For every image it runs zero-shot segmentation as ``groupvit-demo`` does (same resizing, classes,
templates and background threshold) and compares at the label map's size:

- ``protocol``: the zero-shot labels themselves;
- ``oracle background``: ground truth says which final groups are background, the model names
  the others (its best class for each group);
- ``purity oracle, stage s``: every group of stage s takes its pixels' most frequent true label;
- soft assignment entropy per stage (a patch's, the image's group usage; ln G when spread evenly
  over the G groups), to tell a decided grouping from near-ties;
- ``token-grid oracle``: no model: each token of the input's patch grid holds its cell's true
  class fractions, so this bounds what any grouping at this short side can reach.

The groups and the protocol row come from one forward pass over the whole resized image
(``ZeroShotSegmenter.predict_with_groups``), unless ``--mode slide`` needs several windows for it.

It prints the mIoU of each row, per-class IoU, how many groups own pixels per image and how
often an object group is named right, and writes the same as JSON with ``--json``. Label maps are
PNGs named like the images (``--ann-suffix``) whose values index the class list (0 = background
with ``--dataset``), 255 = ignored.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from groupvit.cli import demo  # image loading, resizing and the segmenter
from groupvit.cli.args import at_least
from groupvit.errors import InputError, report_input_errors
from groupvit.group_analysis import (
    assignment_entropy,
    confusion_matrix,
    grid_oracle_labels,
    group_label_counts,
    groups_used,
    iou_per_class,
    mean_iou,
    oracle_background_labels,
    purity_oracle_labels,
)
from groupvit.zero_shot_functional import group_class_affinity, stage_group_maps


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """This tool's options; every other option (classes, checkpoint, model, threshold, short side,
    device, ...) is ``groupvit-demo``'s, with the same defaults and checks."""
    parser = argparse.ArgumentParser(
        prog="groupvit-analyze",
        description=__doc__ + "\nAll other options are those of groupvit-demo.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--ann-dir", type=Path, required=True, help="folder of label maps named like the images"
    )
    parser.add_argument("--ann-suffix", default=".png", help="label map suffix (default: .png)")
    parser.add_argument("--ignore-index", type=int, default=255, help="label left out of the scores")
    parser.add_argument(
        "--max-images", type=at_least(1), help="score only the first N >= 1 images (default: all)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    ours, rest = parser.parse_known_args(argv)
    args = demo.parse_args(rest, prog="groupvit-analyze")
    if args.random_init:
        parser.error("--random-init: random weights have no groups worth analysing; give --checkpoint")
    if ours.json is not None and ours.json.is_dir():
        parser.error(f"--json {ours.json} is a folder; give a file name")
    for key, value in vars(ours).items():
        setattr(args, key, value)
    return args


def load_labels(path: Path) -> torch.Tensor:
    """A label map PNG -> LongTensor [H, W]."""
    try:
        with Image.open(path) as label:
            return torch.from_numpy(np.asarray(label, dtype=np.int64).copy())
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read label map {path}: {e}") from None


def analyze(args: argparse.Namespace) -> dict:
    paths = demo.collect_images(args.images)[: args.max_images]
    ann_paths = [args.ann_dir / (path.stem + args.ann_suffix) for path in paths]
    missing = [str(p) for p in ann_paths if not p.is_file()]
    if missing:
        raise InputError(f"{len(missing)} label maps are missing, e.g. {missing[0]}")
    segmenter, short_side = demo.build_segmenter(args)
    model = segmenter.model
    num_classes = len(args.class_names)
    offset = 0 if args.no_background else 1  # class channel c is label c + offset
    rows: dict[str, torch.Tensor] = {}
    used: dict[str, list[int]] = {}
    entropy: dict[str, list[tuple[float, float]]] = {}
    named_right = object_groups = 0

    def add(name: str, pred: torch.Tensor, target: torch.Tensor) -> None:
        cm = confusion_matrix(pred, target, num_classes, args.ignore_index)
        rows[name] = rows[name] + cm if name in rows else cm

    with torch.no_grad():
        for path, ann_path in zip(tqdm(paths, desc="analyze", unit="image"), ann_paths):
            image, target = demo.load_image(path), load_labels(ann_path)[None].to(args.device)
            size = tuple(target.shape[-2:])
            if size != (image.height, image.width):
                raise InputError(f"{ann_path} is {size[1]}x{size[0]}, its image {image.width}x{image.height}")
            pixels = demo.preprocess(image, short_side).to(args.device)
            # labels and groups at the label map's size, from one whole-image forward pass
            prediction = segmenter.predict_with_groups(pixels, output_size=size)
            features = prediction.features
            add("protocol", prediction.labels, target)
            for stage, soft in enumerate(stage_group_maps(features.assignments), start=1):  # [1, N, G_s]
                token, usage = assignment_entropy(soft)
                entropy.setdefault(f"stage {stage}", []).append((float(token[0]), float(usage[0])))
            for stage, ids in enumerate(prediction.group_maps, start=1):  # [1, H, W] each
                num_groups = features.assignments[stage - 1].shape[1]  # G_s
                counts = group_label_counts(ids, target, num_groups, num_classes, args.ignore_index)
                add(f"purity oracle, stage {stage}", purity_oracle_labels(ids, counts), target)
                used.setdefault(f"stage {stage}", []).append(int(groups_used(ids, num_groups)[0]))
            affinity = group_class_affinity(
                F.normalize(features.group_embeds, dim=-1),
                F.normalize(features.image_embeds, dim=-1),
                segmenter.class_embeddings,
                model.logit_scale_value(),
                segmenter.top_k,
            )  # [1, G, K'], the protocol's restricted affinity
            group_classes = affinity.argmax(dim=-1) + offset
            if offset:
                add("oracle background", oracle_background_labels(ids, counts, group_classes), target)
                owned = counts.sum(dim=-1) > 0
                majority = counts.argmax(dim=-1)
                objects = owned & (majority != 0)
                object_groups += int(objects.sum())
                named_right += int((objects & (group_classes == majority)).sum())
            grid = grid_oracle_labels(target, features.grid_size, num_classes, args.ignore_index)
            add("token-grid oracle", grid, target)
    order = ["protocol", "oracle background"] + [k for k in rows if k.startswith("purity")]
    order.append("token-grid oracle")
    return dict(
        images=len(paths),
        short_side=short_side,
        bg_thresh=segmenter.bg_thresh,
        classes=list(args.class_names),
        miou={k: round(mean_iou(rows[k]), 2) for k in order if k in rows},
        iou={k: [round(float(v), 2) for v in iou_per_class(rows[k])] for k in order if k in rows},
        groups_used_per_image={k: round(sum(v) / len(v), 2) for k, v in used.items()},
        assignment_entropy={
            k: dict(
                token=round(sum(t for t, _ in v) / len(v), 3),
                usage=round(sum(u for _, u in v) / len(v), 3),
                uniform=round(math.log(features.assignments[int(k.split()[1]) - 1].shape[1]), 3),
            )
            for k, v in entropy.items()
        },
        object_groups=object_groups,
        object_groups_named_right=round(named_right / max(object_groups, 1), 4),
    )


def report(result: dict) -> str:
    """The figures as a plain-text table."""
    names = list(result["miou"])
    width = max(len(n) for n in names + ["class"]) + 2
    lines = [
        f"{result['images']} images, short side {result['short_side']}, bg_thresh {result['bg_thresh']}",
        "groups owning pixels per image: "
        + ", ".join(f"{k} {v}" for k, v in result["groups_used_per_image"].items()),
        "soft assignment entropy (nats; a patch's / the image's usage / uniform): "
        + ", ".join(
            f"{k} {v['token']:.3f} / {v['usage']:.3f} / {v['uniform']:.3f}"
            for k, v in result["assignment_entropy"].items()
        ),
    ]
    if result["object_groups"]:
        lines.append(
            f"object groups named right: {100 * result['object_groups_named_right']:.1f}% "
            f"of {result['object_groups']}"
        )
    lines += ["", f"{'':<{width}}{'mIoU':>8}"] + [f"{n:<{width}}{result['miou'][n]:>8.2f}" for n in names]
    lines += ["", "IoU per class"]
    columns = [max(len(n), 6) + 2 for n in names]
    first = max(len(c) for c in result["classes"]) + 2
    lines.append(" " * first + "".join(f"{n:>{w}}" for n, w in zip(names, columns)))
    for c, name in enumerate(result["classes"]):
        lines.append(
            f"{name:<{first}}" + "".join(f"{result['iou'][n][c]:>{w}.2f}" for n, w in zip(names, columns))
        )
    return "\n".join(lines)


@report_input_errors("groupvit-analyze")
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = analyze(args)
    print(report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
