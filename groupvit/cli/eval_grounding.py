"""``groupvit-eval-grounding``: phrase mIoU and recall@0.5 on data with phrase ground truth.

    groupvit-eval-grounding data/synthetic_val/val/grounding.jsonl \
        --checkpoint checkpoints/groupvit_tiny_synthetic.pth --json work_dirs/grounding.json

Grounds every record's caption in its image (:class:`groupvit.PhraseGrounder`) and scores each
ground-truth phrase against its class's pixels (:mod:`groupvit.grounding_metric`); prints a table
per class and writes the summary as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from groupvit.cli.args import at_least
from groupvit.cli.grounder import add_grounder_arguments, build_grounder
from groupvit.errors import InputError, report_input_errors

__all__ = ["main"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="groupvit-eval-grounding",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("grounding", type=Path, help="grounding.jsonl (images and label maps beside it)")
    parser.add_argument(
        "--classes", type=Path, help="class names, one per line (default: classes.txt beside)"
    )
    parser.add_argument("--max-images", type=at_least(1), help="score only the first N records")
    parser.add_argument("--json", type=Path, help="write the summary here")
    add_grounder_arguments(parser)
    return parser.parse_args(argv)


@report_input_errors("groupvit-eval-grounding")
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from groupvit.grounding_metric import (
        GroundingScores,
        format_table,
        match_phrase,
        phrase_iou,
        read_grounding_jsonl,
        summarise,
    )

    records = read_grounding_jsonl(args.grounding)[: args.max_images]
    classes_file = args.classes or args.grounding.parent / "classes.txt"
    class_names = classes_file.read_text(encoding="utf-8").split("\n") if classes_file.is_file() else []
    grounder = build_grounder(args)
    scores = GroundingScores()
    for record in records:
        if not record.label_map.is_file():
            raise InputError(f"label map not found for {record.image}: {record.label_map}")
        label_map = np.asarray(Image.open(record.label_map))
        result = grounder.ground(record.image, record.caption)
        if result.labels.shape != label_map.shape:
            raise InputError(
                f"{record.label_map} is {label_map.shape[1]}x{label_map.shape[0]} but its image is "
                f"{result.labels.shape[1]}x{result.labels.shape[0]}"
            )
        predicted = [p.span for p in result.phrases]
        for span, label in record.phrases:
            index = match_phrase(span, predicted)
            mask = result.phrases[index].mask.numpy() if index is not None else np.zeros_like(label_map, bool)
            scores.add(phrase_iou(mask, label_map, label), label, parsed=index is not None)
    summary = summarise(scores, [n for n in class_names if n])
    summary.update(images=len(records), grounder=repr(grounder), checkpoint=str(args.checkpoint))
    print("\n".join(format_table(summary)))
    print(
        f"{len(records)} images, {summary['phrases']} phrases, {summary['parse_misses']} not found by the parser"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
