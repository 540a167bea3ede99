"""Write PASCAL Context 60-class label maps (background + 59) and the train / val splits.

    python tools/prepare_data/pascal_context.py data/VOCdevkit/VOC2010 data/pascal_context/trainval

Inputs: the VOC2010 devkit folder (``JPEGImages/``, ``ImageSets/Main/{train,val}.txt``) and the folder
of full PASCAL Context annotations (``<name>.mat`` with a ``LabelMap`` of the 459 classes, from
``trainval.tar.gz`` on https://cs.stanford.edu/~roozbeh/pascal-context/). Outputs, in the devkit
folder: ``SegmentationClassContext/<name>.png`` (8-bit grey: 0 background, i for the i-th of the 59
classes in ``mmseg`` / ``groupvit`` order, every other of the 459 classes -> 0) and
``ImageSets/SegmentationContext/{train,val}.txt`` (the VOC2010 Main split, 4,998 / 5,105 images).
These are the files ``configs/_base_/datasets/pascal_context{,59}.py`` read.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from groupvit.errors import InputError, report_input_errors

# The 59 classes (alphabetical, the benchmark's label order 1..59) and their ids among the
# 459 classes of the full annotation (line numbers of its labels.txt).
CONTEXT59_IDS: tuple[tuple[str, int], ...] = (
    ("aeroplane", 2), ("bag", 9), ("bed", 18), ("bedclothes", 19), ("bench", 22), ("bicycle", 23),
    ("bird", 25), ("boat", 31), ("book", 33), ("bottle", 34), ("building", 44), ("bus", 45),
    ("cabinet", 46), ("car", 59), ("cat", 65), ("ceiling", 68), ("chair", 72), ("cloth", 80),
    ("computer", 85), ("cow", 98), ("cup", 104), ("curtain", 105), ("dog", 113), ("door", 115),
    ("fence", 144), ("floor", 158), ("flower", 159), ("food", 162), ("grass", 187), ("ground", 189),
    ("horse", 207), ("keyboard", 220), ("light", 232), ("motorbike", 258), ("mountain", 259),
    ("mouse", 260), ("person", 284), ("plate", 295), ("platform", 296), ("pottedplant", 308),
    ("road", 324), ("rock", 326), ("sheep", 347), ("shelves", 349), ("sidewalk", 354), ("sign", 355),
    ("sky", 360), ("snow", 366), ("sofa", 368), ("table", 397), ("track", 415), ("train", 416),
    ("tree", 420), ("truck", 424), ("tvmonitor", 427), ("wall", 440), ("water", 445), ("window", 454),
    ("wood", 458),
)  # fmt: skip
NUM_FULL_CLASSES = 459


def lookup_table() -> np.ndarray:
    """uint8 [460]: full-annotation class id (0..459) -> 60-class label (0 = background)."""
    table = np.zeros(NUM_FULL_CLASSES + 1, dtype=np.uint8)
    for label, (_, full_id) in enumerate(CONTEXT59_IDS, start=1):
        table[full_id] = label
    return table


def check_labels_file(path: Path) -> None:
    """Check the id table against the dataset's own ``labels.txt`` (``"<id>: <name>"`` per line)."""
    names: dict[int, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*(\d+)\s*:\s*(.+?)\s*$", line)
        if match:
            names[int(match.group(1))] = match.group(2).lower()
    wrong = [f"{full_id}: expected {name!r}, found {names.get(full_id)!r}" for name, full_id in CONTEXT59_IDS
             if names.get(full_id) != name]  # fmt: skip
    if wrong:
        raise InputError(f"{path} does not match the 59-class id table: {wrong[:5]}")


def convert_label_map(full_labels: np.ndarray, table: np.ndarray | None = None) -> np.ndarray:
    """[H, W] ids of the 459 classes -> uint8 [H, W] labels of the 60 classes."""
    table = lookup_table() if table is None else table
    full_labels = np.asarray(full_labels)
    if full_labels.size and (full_labels.min() < 0 or full_labels.max() > NUM_FULL_CLASSES):
        raise ValueError(f"label ids outside 0..{NUM_FULL_CLASSES}: {full_labels.min()}..{full_labels.max()}")
    return table[full_labels.astype(np.int64)]


def load_mat_labels(path: Path) -> np.ndarray:
    """The ``LabelMap`` of one annotation file; :class:`InputError` naming the file otherwise."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        return np.asarray(loadmat(path)["LabelMap"])
    except KeyError:
        raise InputError(f"{path} holds no 'LabelMap' (not a PASCAL Context annotation)") from None
    except (MatReadError, OSError, ValueError, TypeError) as e:  # scipy's words for a file that is not a .mat
        raise InputError(f"cannot read {path}: {e}") from None


def split_names(voc_root: Path, mat_dir: Path) -> dict[str, list[str]]:
    """Per split, the VOC2010 Main images that have an annotation in ``mat_dir`` (sorted); an
    :class:`InputError` when none has, so that nothing is written."""
    available = {p.stem for p in mat_dir.glob("*.mat")}
    if not available:
        raise InputError(f"no PASCAL Context annotations (*.mat) in {mat_dir}")
    names = {}
    for split in ("train", "val"):
        split_file = voc_root / "ImageSets" / "Main" / f"{split}.txt"
        names[split] = sorted(n for n in split_file.read_text().split() if n in available)
    if not any(names.values()):
        raise InputError(
            f"none of the {len(available)} annotations in {mat_dir} is named like an image of "
            f"{voc_root / 'ImageSets' / 'Main'}/{{train,val}}.txt"
        )
    return names


def convert(voc_root: Path, mat_dir: Path) -> dict[str, int]:
    """Write the label PNGs and split files; returns the number of images per split."""
    names = split_names(voc_root, mat_dir)
    out_dir = voc_root / "SegmentationClassContext"
    split_dir = voc_root / "ImageSets" / "SegmentationContext"
    out_dir.mkdir(parents=True, exist_ok=True)
    split_dir.mkdir(parents=True, exist_ok=True)
    table = lookup_table()
    for split, split_list in names.items():
        for name in split_list:
            path = mat_dir / f"{name}.mat"
            full_labels = load_mat_labels(path)
            try:
                labels = convert_label_map(full_labels, table)
            except ValueError as e:
                raise InputError(f"{path}: {e}") from None
            Image.fromarray(labels, mode="L").save(out_dir / f"{name}.png")
        (split_dir / f"{split}.txt").write_text("".join(f"{n}\n" for n in split_list))
    return {split: len(split_list) for split, split_list in names.items()}


@report_input_errors("pascal_context.py")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pascal_context.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("voc_root", type=Path, help="VOC2010 folder (JPEGImages/, ImageSets/Main/)")
    parser.add_argument("mat_dir", type=Path, help="folder of the PASCAL Context <name>.mat annotations")
    parser.add_argument(
        "--labels", type=Path, help="labels.txt of the 459 classes (default: next to mat_dir)"
    )
    args = parser.parse_args(argv)
    for split in ("train", "val"):
        split_file = args.voc_root / "ImageSets" / "Main" / f"{split}.txt"
        if not split_file.is_file():
            raise InputError(f"{split_file} not found (the VOC2010 {split} split)")
    if not args.mat_dir.is_dir():
        raise InputError(f"{args.mat_dir} is not a folder (the PASCAL Context annotations)")
    if args.labels is not None and not args.labels.is_file():
        raise InputError(f"--labels {args.labels}: not a file")
    labels = args.labels or args.mat_dir.parent / "labels.txt"
    if labels.is_file():
        check_labels_file(labels)
    counts = convert(args.voc_root, args.mat_dir)
    print(f"wrote {counts} label maps to {args.voc_root / 'SegmentationClassContext'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
