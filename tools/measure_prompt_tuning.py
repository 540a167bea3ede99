"""Zero-shot vs prompt-tuned mIoU of the prompt-tuning config at several k (docs/prompt_tuning.md).

    python tools/measure_prompt_tuning.py --val data/synthetic_val/val --json work_dirs/prompt_table.json
    python tools/measure_prompt_tuning.py --val data/shapes/val --pool data/shapes_pool400/val \
        --model groupvit_tiny_synthetic_shapes --checkpoint CKPT --runs embedding:1:0.01 embedding:all:0.01 ...

Every run is the config's own training (mmengine runner, ``PromptTuningModel``); the frozen image
side of the labelled pool is shared between the runs (it does not depend on the prompts) and each
run's prompts are scored on the cached val features with the zero-shot protocol: the same scores
as ``mim test`` at the config's size (scores at 320 px resized to the label size, then the argmax).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from groupvit.cli.args import preset_override  # noqa: E402
from groupvit.errors import InputError, report_input_errors  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/groupvit/groupvit_tiny_synthetic_prompt.py"


def val_features(model, root: Path, short_side: int):
    """Per image (features at ``short_side``, label map): one frozen forward each."""
    from PIL import Image

    from groupvit.preprocess import EvalTransform

    transform = EvalTransform(short_side)
    out = []
    for image in sorted((root / "img_dir/val").iterdir()):
        label = np.asarray(Image.open(root / "ann_dir/val" / f"{image.stem}.png"))
        with torch.no_grad():
            out.append(
                (model.forward_segmentation(transform(image)[None]), torch.from_numpy(label.astype(np.int64)))
            )
    return out


def miou(model, cached, class_embeds, num_labels: int, bg_thresh: float = 0.95, top_k: int = 5) -> float:
    from groupvit.sliding_window import resize_scores
    from groupvit.zero_shot_functional import scores_from_features

    confusion = np.zeros((num_labels, num_labels), np.int64)
    scale = model.logit_scale_value()
    for features, label in cached:
        size = tuple(int(s) * model.config.vision.patch_size for s in features.grid_size)
        scores = scores_from_features(features, class_embeds, scale, size, True, bg_thresh, top_k)
        pred = resize_scores(scores, tuple(label.shape)).argmax(dim=1)[0]
        valid = label != 255
        confusion += np.bincount(
            (label[valid] * num_labels + pred[valid]).numpy(), minlength=num_labels**2
        ).reshape(num_labels, num_labels)
    inter = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - inter
    return float(100 * np.mean(inter[union > 0] / union[union > 0]))


def read_classes(root: Path) -> list[str]:
    """The label names of a set in the val format (``classes.txt``, background first)."""
    path = root / "classes.txt"
    if not path.is_file():
        raise InputError(f"{path}: missing (the label names, background first, one a line)")
    return [name.strip() for name in path.read_text(encoding="utf-8").splitlines() if name.strip()]


def parse_run(spec: str) -> tuple[str, str, float]:
    """``KIND:K:LR`` (``embedding:16:0.01``, ``context:all:0.003``) -> (kind, k, lr)."""
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] not in ("embedding", "context", "context_per_class"):
        raise argparse.ArgumentTypeError(
            f"{spec!r}: expected KIND:K:LR, KIND one of embedding, context, context_per_class"
        )
    if parts[1] != "all" and not parts[1].isdigit():
        raise argparse.ArgumentTypeError(f"{spec!r}: K must be a number of images per class or 'all'")
    try:
        return parts[0], parts[1], float(parts[2])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{spec!r}: LR must be a number") from None


def train(options: dict, shared_cache: dict) -> tuple:
    from mmengine.config import Config
    from mmseg.registry import RUNNERS

    cfg = Config.fromfile(str(CONFIG))
    cfg.merge_from_dict(options)
    cfg.work_dir = tempfile.mkdtemp(prefix="prompt_")
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.train_cfg.val_interval = 10**9
    cfg.log_level = "WARNING"
    start = time.perf_counter()
    runner = RUNNERS.build(cfg)
    runner.model._image_side = shared_cache
    before = len(shared_cache)
    runner.train()
    seconds = time.perf_counter() - start
    size = os.path.getsize(os.path.join(cfg.work_dir, "prompts.safetensors"))
    return runner.model, seconds, len(shared_cache) - before, len(runner.train_dataloader.dataset), size


@report_input_errors("measure_prompt_tuning")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--val", type=Path, required=True, help="scored segmentation set (mmseg layout)")
    parser.add_argument("--pool", default="data/pool/val", help="labelled images (mmseg layout)")
    parser.add_argument("--kinds", nargs="+", default=["embedding", "context", "context_per_class"])
    parser.add_argument("--ks", nargs="+", default=["1", "4", "16", "all"])
    parser.add_argument("--lrs", nargs="+", type=float, default=[1e-2])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument(
        "--runs", nargs="+", type=parse_run, help="KIND:K:LR runs instead of kinds x ks x lrs"
    )
    parser.add_argument("--model", default="groupvit_tiny_synthetic", help="preset of the frozen model")
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints/groupvit_tiny_synthetic.pth"))
    parser.add_argument(
        "--override",
        nargs="+",
        type=preset_override,
        default=[],
        help="preset fields KEY=VALUE (fusion.layers=2)",
    )
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    import groupvit
    import mmseg_plugins  # noqa: F401
    from groupvit.zero_shot_functional import build_class_embeddings

    classes = read_classes(args.val)
    if read_classes(Path(args.pool)) != classes:
        raise InputError(
            f"{args.pool} and {args.val} have different classes.txt: tune on a set of the same classes"
        )
    overrides = dict(args.override)
    model = groupvit.create_model(args.model, checkpoint=args.checkpoint, **overrides).eval()
    start = time.perf_counter()
    cached = val_features(model, args.val, 320)
    print(f"val features of {len(cached)} images in {time.perf_counter() - start:.0f} s", flush=True)
    zero = build_class_embeddings(model, groupvit.get_tokenizer(), classes[1:], ["a photo of a {}."])
    rows = [dict(kind="zero-shot", miou=round(miou(model, cached, zero, len(classes)), 2))]
    print(rows[-1], flush=True)
    shared_cache: dict = {}
    runs = args.runs or [(kind, k, lr) for kind in args.kinds for k in args.ks for lr in args.lrs]
    for kind, k, lr in runs:
        for seed in args.seeds:
            options = {
                "model.model_name": args.model,
                "model.checkpoint": args.checkpoint,
                "model.model_overrides": overrides,
                "model.class_names": tuple(classes),
                "train_dataloader.dataset.classes": tuple(classes),
                "model.prompt_kind": kind.split("_")[0],
                "model.shared_context": kind != "context_per_class",
                "train_dataloader.dataset.data_root": args.pool,
                "train_dataloader.dataset.k": None if k == "all" else int(k),
                "train_dataloader.dataset.seed": seed,
                "optim_wrapper.optimizer.lr": lr,
                "param_scheduler.0.eta_min": lr * 0.01,
            }
            tuned, seconds, new_images, images, size = train(options, shared_cache)
            embeds = tuned.learner(tuned.model).detach()
            score = round(miou(model, cached, embeds, len(classes)), 2)
            rows.append(
                dict(kind=kind, k=k, lr=lr, seed=seed, images=images, miou=score, seconds=round(seconds, 1),
                     new_images=new_images, file_bytes=size, load=round(os.getloadavg()[0], 1))
            )  # fmt: skip
            print(rows[-1], flush=True)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(dict(val=str(args.val), rows=rows), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
