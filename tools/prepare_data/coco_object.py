"""Write COCO-Object label maps (background + 80 thing classes) from COCO instance annotations.

    python tools/prepare_data/coco_object.py data/coco            # val2017 (the benchmark split)
    python tools/prepare_data/coco_object.py data/coco --split train2017

Reads ``<root>/annotations/instances_<split>.json`` and writes, for every image of the split,
``<root>/annotations/<split>/<image stem>_instanceTrainIds.png`` (8-bit grey): 0 background,
i for ``COCO_OBJECT_CLASSES[i]`` (1..80, COCO category-id order). Instances are painted largest
first, so a smaller object on top of a larger one keeps its label; crowd regions get their class.
Pixels no instance covers are background, stuff included (there is no "unlabelled" class here).
Masks are rasterised by pycocotools (the COCO API's own polygon and RLE code), so they equal `annToMask`.
Images are expected in ``<root>/images/<split>/`` (the layout ``configs/_base_/datasets/coco_object.py``
reads); they are not opened, the sizes come from the annotation file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

# Background + the 80 COCO categories, spelled as in the annotation files (same list as the
# metainfo of mmseg_plugins.datasets.COCOObjectDataset; tests check that they agree).
from groupvit.class_names import COCO_OBJECT_CLASSES
from groupvit.errors import InputError, report_input_errors

SUFFIX = "_instanceTrainIds.png"


def annotation_mask(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """bool mask [h, w] of one COCO segmentation, rasterised by pycocotools as COCO's own tools do.

    Polygons ``[[x1, y1, x2, y2, ...], ...]`` (one list per part) are merged into one mask; parts
    with fewer than three points are left out (pycocotools would read a 4-number part as a box).
    RLEs are ``{"size": [h, w], "counts": [...] | "..."}``, uncompressed (crowds) or compressed;
    the mask has the RLE's own size, which the caller checks against the image.
    """
    if isinstance(segmentation, list):
        parts = [part for part in segmentation if len(part) >= 6]
        if not parts:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(parts, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle_height, rle_width = segmentation["size"]
        rle = mask_utils.frPyObjects(segmentation, rle_height, rle_width)
    elif isinstance(segmentation.get("counts"), str):
        rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}
    else:
        raise ValueError(f"unsupported segmentation format: {type(segmentation).__name__}")
    return mask_utils.decode(rle).astype(bool)


def label_map(image: dict, annotations: list[dict], category_to_label: dict[int, int]) -> np.ndarray:
    """uint8 [h, w]: 0 background, the COCO-Object label of the instance painted last elsewhere."""
    height, width = image["height"], image["width"]
    out = np.zeros((height, width), dtype=np.uint8)
    for ann in sorted(annotations, key=lambda a: -float(a.get("area", 0.0))):
        try:
            mask = annotation_mask(ann["segmentation"], height, width)
        except ValueError as e:  # pycocotools: "Invalid RLE mask representation" (counts do not fit the size)
            raise ValueError(f"annotation {ann.get('id')}: {e}") from None
        if mask.shape != out.shape:
            raise ValueError(
                f"annotation {ann.get('id')} has size {mask.shape}, image {image['id']} {out.shape}"
            )
        out[mask] = category_to_label[ann["category_id"]]
    return out


def category_labels(categories: list[dict], class_names: tuple[str, ...]) -> dict[int, int]:
    """COCO category id -> COCO-Object label (index in ``class_names``), matched by name."""
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [c["name"] for c in categories if c["name"] not in index]
    if unknown:
        raise InputError(f"categories not among the 80 COCO-Object classes: {unknown}")
    return {c["id"]: index[c["name"]] for c in categories}


def read_annotations(annotation_file: Path) -> dict:
    """The parsed annotation file; :class:`InputError` naming it when it is not COCO instances JSON."""
    try:
        with open(annotation_file, encoding="utf-8") as f:
            coco = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{annotation_file} is not valid JSON: {e}") from None
    if not isinstance(coco, dict):
        raise InputError(
            f"{annotation_file} holds a JSON {type(coco).__name__}, not a COCO annotation object"
        )
    missing = [key for key in ("images", "annotations", "categories") if not isinstance(coco.get(key), list)]
    if missing:
        raise InputError(
            f"{annotation_file} has no {' / '.join(repr(k) for k in missing)} list (not COCO instances)"
        )
    return coco


def convert(annotation_file: Path, out_dir: Path) -> int:
    """Write one label PNG per image of ``annotation_file`` into ``out_dir``; returns the count.

    The categories and the annotations' fields are checked before anything is written; a polygon or
    RLE that does not fit its image stops the run naming the image.
    """
    coco = read_annotations(annotation_file)
    try:
        category_to_label = category_labels(coco["categories"], COCO_OBJECT_CLASSES)
        per_image: dict[int, list[dict]] = defaultdict(list)
        for ann in coco["annotations"]:
            if ann["category_id"] not in category_to_label:
                raise InputError(
                    f"annotation {ann.get('id')} has category {ann['category_id']}, not in 'categories'"
                )
            per_image[ann["image_id"]].append(ann)
        images = [
            (image, per_image.get(image["id"], []), Path(image["file_name"]).stem) for image in coco["images"]
        ]
    except KeyError as e:  # an entry without a field COCO always writes
        raise InputError(f"{annotation_file}: an entry lacks the field {e}") from None
    except TypeError as e:
        raise InputError(f"{annotation_file}: malformed entry ({e})") from None
    except InputError as e:
        raise InputError(f"{annotation_file}: {e}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    for image, image_anns, stem in images:
        try:
            labels = label_map(image, image_anns, category_to_label)
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{annotation_file}: image {image['id']}: {e}") from None
        Image.fromarray(labels, mode="L").save(out_dir / (stem + SUFFIX))
    return len(images)


@report_input_errors("coco_object.py")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coco_object.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="COCO root holding annotations/instances_<split>.json")
    parser.add_argument("--split", default="val2017", help="val2017 (benchmark) or train2017")
    parser.add_argument("--out-dir", type=Path, help="default: <root>/annotations/<split>")
    args = parser.parse_args(argv)
    annotation_file = args.root / "annotations" / f"instances_{args.split}.json"
    if not annotation_file.is_file():
        raise InputError(
            f"{annotation_file} not found; unpack annotations_trainval2017.zip from "
            "https://cocodataset.org/#download into the COCO root"
        )
    out_dir = args.out_dir or args.root / "annotations" / args.split
    count = convert(annotation_file, out_dir)
    print(f"wrote {count} label maps to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
