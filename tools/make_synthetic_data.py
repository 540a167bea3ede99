"""Write a small synthetic dataset for an end-to-end GroupViT run.

    python tools/make_synthetic_data.py --out data/synthetic --num-train 20000 --num-val 500

Layout under --out:

    train/images/000000000.jpg ...         training images
    train/captions.jsonl                   {"image": "images/000000000.jpg", "caption": "..."}
    train/captions.csv                     image,caption (same pairs)
    train_shards/synthetic-000000.tar ...  the same pairs in img2dataset layout (KEY.jpg, KEY.txt, KEY.json)
    train/grounding.jsonl, train/ann_dir/  with --train-grounding: the val grounding format for the
                                           train pairs, label PNGs at ann_dir/KEY.png
    val/img_dir/val/000000.png             segmentation val images (mmseg layout)
    val/ann_dir/val/000000.png             label PNGs: 0 = background, i = classes[i]
    val/classes.txt, val/meta.json         class list (background first) and palette
    val/grounding.jsonl                    {"image": "img_dir/val/000000.png", "caption": "...",
                                            "phrases": [{"span": [start, end], "label": class id}]}
    meta.json                              class list, palette, sizes, the shard brace pattern

Every sample is drawn from its own generator seeded by (seed, split, index): the
output does not depend on --workers.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from groupvit.cli.args import at_least
from groupvit.data.synthetic import CLASSES, render_grounded_scene
from groupvit.errors import report_input_errors

_SPLIT_IDS = {"train": 0, "val": 1}
# Scenes below 6 px do not render; at 16 px (two patches of the synthetic model) objects still
# span a few pixels.
MIN_SIZE = 16


def palette(num_classes: int) -> list[list[int]]:
    """A fixed colour per class for visualisation; background black."""
    rng = np.random.default_rng(1234)
    colours = rng.integers(40, 256, size=(num_classes, 3))
    colours[0] = 0
    return colours.tolist()


def _render(split: str, index: int, seed: int, size: int) -> tuple[bytes, np.ndarray, str, list]:
    rng = np.random.default_rng([seed, _SPLIT_IDS[split], index])
    scene = render_grounded_scene(rng, size)
    buf = io.BytesIO()
    if split == "train":
        # 4:4:4 chroma: at 64 px, 4:2:0 subsampling would smear the colour cues
        scene.image.save(buf, format="JPEG", quality=95, subsampling=0)
    else:
        scene.image.save(buf, format="PNG")
    phrases = [{"span": list(p.span), "label": p.label} for p in scene.phrases]
    return buf.getvalue(), scene.mask, scene.caption, phrases


def _render_chunk(
    split: str, start: int, stop: int, seed: int, size: int
) -> list[tuple[bytes, np.ndarray, str, list]]:
    return [_render(split, i, seed, size) for i in range(start, stop)]


def _generate(split: str, num: int, seed: int, size: int, workers: int):
    """Yield (index, encoded image, mask, caption, phrases) in index order."""
    chunk = 500
    ranges = [(s, min(s + chunk, num)) for s in range(0, num, chunk)]
    if workers <= 1:
        results = (_render_chunk(split, a, b, seed, size) for a, b in ranges)
    else:
        pool = ProcessPoolExecutor(workers)
        results = pool.map(_render_chunk, *zip(*[(split, a, b, seed, size) for a, b in ranges]))
    index = 0
    for batch in results:
        for item in batch:
            yield (index, *item)
            index += 1
    if workers > 1:
        pool.shutdown()


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # reproducible shards
    tar.addfile(info, io.BytesIO(data))


def write_train(
    out: Path, num: int, seed: int, size: int, shard_size: int, workers: int, grounding: bool = False
) -> str | None:
    """Write the folder (jsonl + csv) and the shards; return the shard brace pattern (None: no pairs).

    ``grounding``: also ``train/grounding.jsonl`` and the label maps ``train/ann_dir/KEY.png``
    (where ``groupvit.grounding_metric.read_grounding_jsonl`` looks for an image under ``images/``).
    """
    import csv
    from contextlib import nullcontext

    image_dir = out / "train" / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    shard_dir = out / "train_shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    num_shards = (num + shard_size - 1) // shard_size
    tar = None
    with (
        open(out / "train" / "captions.jsonl", "w", encoding="utf-8") as jsonl,
        open(out / "train" / "captions.csv", "w", encoding="utf-8", newline="") as csv_file,
        open(out / "train" / "grounding.jsonl", "w", encoding="utf-8")
        if grounding
        else nullcontext() as phrases_file,
    ):
        writer = csv.writer(csv_file)
        writer.writerow(["image", "caption"])
        if grounding:
            (out / "train" / "ann_dir").mkdir(exist_ok=True)
        for index, data, mask, caption, phrases in _generate("train", num, seed, size, workers):
            key = f"{index:09d}"
            rel = f"images/{key}.jpg"
            (out / "train" / rel).write_bytes(data)
            jsonl.write(json.dumps({"image": rel, "caption": caption}) + "\n")
            if grounding:
                Image.fromarray(mask, mode="L").save(out / "train" / "ann_dir" / f"{key}.png")
                phrases_file.write(json.dumps({"image": rel, "caption": caption, "phrases": phrases}) + "\n")
            writer.writerow([rel, caption])
            if index % shard_size == 0:
                if tar is not None:
                    tar.close()
                tar = tarfile.open(shard_dir / f"synthetic-{index // shard_size:06d}.tar", "w")
            _add_member(tar, f"{key}.jpg", data)
            _add_member(tar, f"{key}.txt", caption.encode("utf-8"))
            _add_member(tar, f"{key}.json", json.dumps({"key": key, "caption": caption}).encode("utf-8"))
    if tar is None:
        return None
    tar.close()
    return str(shard_dir / f"synthetic-{{000000..{num_shards - 1:06d}}}.tar")


def write_val(out: Path, num: int, seed: int, size: int, workers: int) -> None:
    img_dir = out / "val" / "img_dir" / "val"
    ann_dir = out / "val" / "ann_dir" / "val"
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    with open(out / "val" / "grounding.jsonl", "w", encoding="utf-8") as grounding:
        for index, data, mask, caption, phrases in _generate("val", num, seed, size, workers):
            (img_dir / f"{index:06d}.png").write_bytes(data)
            Image.fromarray(mask, mode="L").save(ann_dir / f"{index:06d}.png")
            record = {"image": f"img_dir/val/{index:06d}.png", "caption": caption, "phrases": phrases}
            grounding.write(json.dumps(record) + "\n")
    (out / "val" / "classes.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")


@report_input_errors("make_synthetic_data.py")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make_synthetic_data.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--num-train", type=at_least(0), default=20000, help="training image-caption pairs (>= 0)"
    )
    parser.add_argument("--num-val", type=at_least(0), default=500, help="segmentation val images (>= 0)")
    parser.add_argument(
        "--size",
        type=at_least(MIN_SIZE),
        default=64,
        help=f"image side in pixels, train and val (>= {MIN_SIZE})",
    )
    parser.add_argument("--seed", type=at_least(0), default=0, help="random seed (>= 0)")
    parser.add_argument("--shard-size", type=at_least(1), default=1000, help="samples per tar shard (>= 1)")
    parser.add_argument("--workers", type=at_least(1), default=1, help="rendering processes (>= 1)")
    parser.add_argument(
        "--train-grounding",
        action="store_true",
        help="also write train/grounding.jsonl and train/ann_dir label maps (phrase ground truth)",
    )
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file, not a folder")

    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    pattern = write_train(
        args.out, args.num_train, args.seed, args.size, args.shard_size, args.workers, args.train_grounding
    )
    write_val(args.out, args.num_val, args.seed, args.size, args.workers)
    meta = {
        "classes": list(CLASSES),
        "palette": palette(len(CLASSES)),
        "size": args.size,
        "seed": args.seed,
        "num_train": args.num_train,
        "num_val": args.num_val,
        "train_shards": pattern,
        "train_index": str(args.out / "train" / "captions.jsonl"),
        "val_root": str(args.out / "val"),
    }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    val_meta = {"classes": meta["classes"], "palette": meta["palette"], "reduce_zero_label": False}
    (args.out / "val" / "meta.json").write_text(json.dumps(val_meta, indent=2) + "\n", encoding="utf-8")
    print(
        f"wrote {args.num_train} train pairs and {args.num_val} val images to {args.out} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    print(f"shards: {pattern or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
