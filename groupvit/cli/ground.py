"""``groupvit-ground``: a mask for every noun phrase of a caption, for each image.

    groupvit-ground photo.jpg photos/ --caption "a dog chasing a red ball on the grass" \
        --checkpoint gcc_yfcc --out work_dirs/ground
    groupvit-ground --captions pairs.jsonl --checkpoint checkpoints/groupvit_tiny_synthetic.pth

Writes, per image, ``OUT/<stem>_grounding.png`` (the image with a colour per phrase, the caption
below with each phrase underlined in its colour; dashed: no group claimed it), one mask PNG per
phrase (``<stem>_phrase<i>.png``, 255 inside) and ``<stem>.json``::

    {"caption": str, "phrases": [{"text", "span": [start, end], "score", "pixel_share", "mask"}]}

``--captions FILE.jsonl`` holds ``{"image": path, "caption": str}`` per line (paths relative to the
file), a different caption per image. The model preset is read off the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from groupvit.cli.grounder import add_grounder_arguments, build_grounder
from groupvit.cli.records import phrase_records
from groupvit.errors import InputError, report_input_errors
from groupvit.preprocess import collect_images

__all__ = ["main"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="groupvit-ground", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("images", nargs="*", type=Path, help="image files and/or folders of images")
    parser.add_argument("--caption", help="the sentence (or class list 'cat. dog.') for every image")
    parser.add_argument("--captions", type=Path, help='JSONL of {"image": ..., "caption": ...} per line')
    parser.add_argument("--out", type=Path, default=Path("work_dirs/ground"), help="output folder")
    add_grounder_arguments(parser)
    args = parser.parse_args(argv)
    if (args.caption is None) == (args.captions is None):
        parser.error("give either --caption (with images) or --captions FILE.jsonl")
    if args.caption is not None and not args.images:
        parser.error("--caption needs at least one image or folder")
    if args.captions is not None and args.images:
        parser.error("--captions names the images itself; give no image arguments with it")
    return args


def collect_pairs(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """(image, caption) for every image to ground."""
    if args.captions is None:
        images = collect_images(args.images)
        return [(image, args.caption) for image in images]
    if not args.captions.is_file():
        raise InputError(f"captions file not found: {args.captions}")
    pairs = []
    for number, line in enumerate(args.captions.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            image, caption = record["image"], record["caption"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(
                f'{args.captions}:{number}: expected {{"image": ..., "caption": ...}}, got {line[:80]!r}'
            ) from None
        pairs.append((args.captions.parent / image, caption))
    if not pairs:
        raise InputError(f"{args.captions} holds no image-caption pair")
    return pairs


def write_outputs(out: Path, stem: str, image: Image.Image, caption: str, result) -> dict:
    """The picture, the phrase masks and the JSON of one image; returns the JSON record."""
    from groupvit.visualization.grounding import draw_grounding

    labels = result.labels.numpy()
    spans = [p.span for p in result.phrases]
    empty = [not bool(p.mask.any()) for p in result.phrases]
    draw_grounding(np.asarray(image), labels, caption, spans, empty).save(out / f"{stem}_grounding.png")
    phrases = phrase_records(result)
    for index, (phrase, entry) in enumerate(zip(result.phrases, phrases), 1):
        entry["mask"] = f"{stem}_phrase{index}.png"
        Image.fromarray(phrase.mask.numpy().astype(np.uint8) * 255, "L").save(out / entry["mask"])
    record = {"caption": caption, "phrases": phrases}
    (out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


@report_input_errors("groupvit-ground")
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from groupvit.preprocess import load_image

    pairs = collect_pairs(args)
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out {args.out} is a file, not a folder")
    grounder = build_grounder(args)
    print(f"{grounder} on {len(pairs)} image(s)", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    stems: set[str] = set()
    skipped = 0
    for path, caption in pairs:
        try:
            image = load_image(path)
            result = grounder.ground(image, caption)
        except InputError as e:  # one unreadable image or empty caption must not stop the others
            print(f"groupvit-ground: skipping {path}: {e}", file=sys.stderr)
            skipped += 1
            continue
        stem, n = path.stem, 2
        while stem in stems:
            stem, n = f"{path.stem}_{n}", n + 1
        stems.add(stem)
        record = write_outputs(args.out, stem, image, caption, result)
        found = ", ".join(f"{p['text']!r} {p['pixel_share']:.0%}" for p in record["phrases"])
        print(
            f"{path}: {found or f'the caption {caption!r} has no noun phrase: nothing grounded'}",
            file=sys.stderr,
        )
    print(
        f"grounded {len(pairs) - skipped} image(s), skipped {skipped}; outputs in {args.out}", file=sys.stderr
    )
    return 1 if skipped == len(pairs) else 0


if __name__ == "__main__":
    sys.exit(main())
