"""``groupvit-pseudo-label``: a teacher's phrase masks for every caption of an image-text set.

    groupvit-pseudo-label data/synthetic/train --checkpoint checkpoints/groupvit_tiny_synthetic.pth \
        --out data/pseudo --threshold 0.5

INPUT is a folder with ``captions.jsonl`` (an image-text folder) or ``grounding.jsonl`` (the val
format; only image and caption are read). Writes, under OUT (which must not exist, or be empty)::

    grounding.jsonl      {"image": "images/000000000.jpg", "caption", "source",
                          "phrases": [{"span": [s, e], "label": v, "score"}]}
    images/              the images (hard links where the file system allows, else copies)
    ann_dir/             a label PNG per record: v = the phrase's mask (1..P), 0 = no phrase,
                         255 = a phrase below the threshold (ignore)
    summary.json         records, phrases grounded and kept, the settings

``--truth FILE`` (a ``grounding.jsonl`` with class label maps for the same images, in the same
order: the val format) also prints, for each ``--report`` threshold, how many masks are kept and
how precise they are (:func:`groupvit.pseudo_labels.score_pseudo_labels`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from groupvit.cli.args import at_least, unit_interval
from groupvit.cli.grounder import add_grounder_arguments, build_grounder
from groupvit.errors import InputError, report_input_errors

__all__ = ["main"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="groupvit-pseudo-label",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", type=Path, help="folder with captions.jsonl or grounding.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    parser.add_argument(
        "--threshold",
        type=unit_interval,
        default=0.5,
        help="keep phrases scoring at least this (default 0.5)",
    )
    parser.add_argument("--max-images", type=at_least(1), help="label only the first N records")
    parser.add_argument("--truth", type=Path, help="grounding.jsonl with ground truth for the same records")
    parser.add_argument(
        "--report", type=unit_interval, nargs="+", default=[0.3, 0.5, 0.7, 0.9], help="thresholds of --truth"
    )
    add_grounder_arguments(parser)
    return parser.parse_args(argv)


def read_pairs(folder: Path) -> list[tuple[Path, str]]:
    """(image, caption) of every record of ``folder``'s ``captions.jsonl`` or ``grounding.jsonl``."""
    index = next((folder / n for n in ("captions.jsonl", "grounding.jsonl") if (folder / n).is_file()), None)
    if index is None:
        raise InputError(f"{folder} holds neither captions.jsonl nor grounding.jsonl")
    pairs = []
    for number, line in enumerate(index.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                raw = json.loads(line)
                pairs.append((folder / raw["image"], str(raw["caption"])))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError(f'{index}:{number}: expected {{"image": ..., "caption": ...}}') from None
    if not pairs:
        raise InputError(f"{index} holds no record")
    return pairs


def check_out(out: Path) -> None:
    """OUT must be new or an empty folder: pseudo-labels never replace earlier ones by mistake."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--out {out} exists and is not an empty folder; remove it or choose another")


def place_image(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


@report_input_errors("groupvit-pseudo-label")
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from groupvit.pseudo_labels import pseudo_label, score_pseudo_labels

    check_out(args.out)
    pairs = read_pairs(args.input)[: args.max_images]
    truth = None
    if args.truth is not None:
        from groupvit.grounding_metric import read_grounding_jsonl

        truth = read_grounding_jsonl(args.truth)[: len(pairs)]
        if len(truth) != len(pairs) or any(
            t.image.resolve() != p.resolve() for t, (p, _) in zip(truth, pairs)
        ):
            raise InputError(
                f"--truth {args.truth} does not name the same images in the same order as {args.input}"
            )
    if truth is not None and args.threshold > min(args.report):
        raise InputError(f"--report thresholds below --threshold {args.threshold} cannot be scored")
    grounder = build_grounder(args)
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    (args.out / "ann_dir").mkdir()
    grounded = kept = 0
    labelled = []
    with open(args.out / "grounding.jsonl", "w", encoding="utf-8") as index:
        for number, (image, caption) in enumerate(pairs):
            result = grounder.ground(image, caption)
            label_map, phrases = pseudo_label(result, args.threshold)
            name = f"{number:09d}"
            place_image(image, args.out / "images" / f"{name}{image.suffix}")
            Image.fromarray(label_map, mode="L").save(args.out / "ann_dir" / f"{name}.png")
            record = {"image": f"images/{name}{image.suffix}", "caption": caption, "source": str(image)}
            index.write(json.dumps({**record, "phrases": phrases}) + "\n")
            grounded += len(result.phrases)
            kept += len(phrases)
            if truth is not None:
                labelled.append((label_map, phrases))
    summary = dict(
        records=len(pairs), phrases=grounded, kept=kept, threshold=args.threshold,
        grounder=repr(grounder), checkpoint=str(args.checkpoint), input=str(args.input),
    )  # fmt: skip
    if truth is not None:
        maps = [np.asarray(Image.open(t.label_map)) for t in truth]
        summary["truth"] = [
            s.row() for s in score_pseudo_labels(labelled, list(zip(truth, maps)), args.report)
        ]
        for row in summary["truth"]:
            print(json.dumps(row))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"{len(pairs)} records, {grounded} phrases grounded, {kept} kept at {args.threshold}: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
