"""Plot a training run: losses against iterations and zero-shot val mIoU against training time.

Reads mmengine's scalar log (``WORK_DIR/<timestamp>/vis_data/scalars.json``, one JSON object per
logged step) and writes one PNG with two panels.

    python tools/plot_log.py work_dirs/groupvit_tiny_synthetic --out docs/images/synthetic_training.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_scalars(work_dir: Path) -> list[dict]:
    """All logged records of the newest run in ``work_dir`` (or of the given scalars.json)."""
    if work_dir.is_file():
        path = work_dir
    else:
        runs = sorted(work_dir.glob("*/vis_data/scalars.json"))
        if not runs:
            raise FileNotFoundError(
                f"no */vis_data/scalars.json under {work_dir}: is it an mmengine work dir?"
            )
        path = runs[-1]
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def split_records(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(training records with losses, val records with mIoU), each with ``minutes`` of training.

    Training time is rebuilt from the logged per-iteration ``time`` (an average over the logging
    interval) times the iterations of that interval; validation time is not counted.
    """
    train, val = [], []
    minutes, last_iter = 0.0, 0
    for rec in records:
        if "loss" in rec:
            minutes += rec["time"] * (rec["iter"] - last_iter) / 60.0
            last_iter = rec["iter"]
            train.append({**rec, "minutes": minutes})
        elif "mIoU" in rec:
            val.append({**rec, "minutes": minutes, "iter": last_iter})
    return train, val


def plot(train: list[dict], val: list[dict], out: Path) -> None:
    """Two panels: every ``loss_*`` against iterations; val mIoU against training minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_miou) = plt.subplots(1, 2, figsize=(11, 4))
    keys = sorted({k for rec in train for k in rec if k.startswith("loss_")})
    for key in keys:
        ax_loss.plot([r["iter"] for r in train if key in r], [r[key] for r in train if key in r], label=key)
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    if val:
        ax_miou.plot([r["minutes"] for r in val], [r["mIoU"] for r in val], marker="o")
        for r in val:
            ax_miou.annotate(f"it {r['iter']}", (r["minutes"], r["mIoU"]), fontsize=7)
    ax_miou.set_xlabel("training time (minutes)")
    ax_miou.set_ylabel("zero-shot val mIoU (%)")
    ax_miou.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", type=Path, help="mmengine work dir (or a scalars.json)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = parser.parse_args()
    try:
        train, val = split_records(read_scalars(args.work_dir))
    except FileNotFoundError as exc:
        sys.exit(f"error: {exc}")
    if not train:
        sys.exit(f"error: no training records (with 'loss') in {args.work_dir}")
    plot(train, val, args.out)
    for r in val:
        print(f"iter {r['iter']:>6}  {r['minutes']:6.1f} min  mIoU {r['mIoU']:.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
