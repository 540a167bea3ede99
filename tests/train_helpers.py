"""Shared helpers of the training tests: tiny image-caption folders and seconds-long configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "groupvit" / "groupvit_tiny_synthetic.py"


def write_caption_folder(root: Path, num: int, size: int = 64, seed: int = 0, corrupt: int = 0) -> Path:
    """``num`` synthetic scenes as ``root/images/*.jpg`` + ``root/captions.jsonl``.

    The last ``corrupt`` entries of the index name files that are not images.
    """
    from groupvit.data.synthetic import render_scene

    (root / "images").mkdir(parents=True, exist_ok=True)
    with open(root / "captions.jsonl", "w", encoding="utf-8") as f:
        for i in range(num + corrupt):
            rel = f"images/{i:04d}.jpg"
            if i < num:
                image, _, caption = render_scene(np.random.default_rng([seed, i]), size)
                image.save(root / rel, quality=95, subsampling=0)
            else:
                (root / rel).write_bytes(b"not a jpeg")
                caption = "a broken file"
            f.write(json.dumps({"image": rel, "caption": caption}) + "\n")
    return root


def write_small_config(
    path: Path,
    data_root: Path,
    *,
    batch_size: int,
    max_iters: int,
    lr: float = 2e-3,
    warmup_iters: int = 0,
    checkpoint_interval: int | None = None,
    log_interval: int = 10,
    model_name: str = "groupvit_tiny",
) -> Path:
    """A config on top of the tiny synthetic one: tiny model, the given folder, no validation, CPU.

    The paper's losses (no duplicate-aware targets), so that chance levels are ln(B) and ln(B K).
    """
    if warmup_iters:
        schedule = (
            f"[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end={warmup_iters}),\n"
            f" dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin={warmup_iters}, end={max_iters})]"
        )
    else:
        schedule = "[dict(type='ConstantLR', factor=1.0, by_epoch=False)]"
    path.write_text(
        f"""_base_ = [{str(TINY_CONFIG)!r}]
model = dict(model_name={model_name!r}, duplicate_positives=False)
train_dataloader = dict(
    batch_size={batch_size}, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={str(data_root)!r},
                 image_transform=dict(image_size=64, scale=(0.8, 1.0), auto_augment=None, color_jitter=0.0)))
val_cfg = None
val_dataloader = None
val_evaluator = None
optim_wrapper = dict(optimizer=dict(lr={lr}))
param_scheduler = {schedule}
train_cfg = dict(max_iters={max_iters}, val_interval={max_iters})
default_hooks = dict(logger=dict(interval={log_interval}),
                     checkpoint=dict(interval={checkpoint_interval or max_iters}))
custom_hooks = [dict(type='SkippedSamplesHook', interval={log_interval})]
""",
        encoding="utf-8",
    )
    return path


def read_scalars(work_dir: Path) -> list[dict]:
    """Every ``vis_data/scalars.json`` record under ``work_dir`` (one run per timestamped folder)."""
    records = []
    for scalars in sorted(work_dir.glob("*/vis_data/scalars.json")):
        records += [json.loads(line) for line in scalars.read_text().splitlines() if line.strip()]
    return records
