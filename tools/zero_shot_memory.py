"""Peak memory of zero-shot segmentation against the number of classes (CPU, one process per run).

    python tools/zero_shot_memory.py                                   # 500 and 8000 classes, 320x480
    python tools/zero_shot_memory.py --classes 100 2000 --modes slide --methods labels

Each run is a fresh subprocess (peak RSS, ``ru_maxrss``, only grows): it builds the model with
random weights and a ``ZeroShotSegmenter`` over K made-up class names, computes the class
embeddings (``setup``), then segments one image with ``predict`` (dense scores [1, K+1, H, W])
or ``predict_labels`` (labels only). Figures are printed, not checked.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys

METHODS = ("predict", "labels")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="groupvit_tiny_synthetic")
    p.add_argument("--classes", type=int, nargs="+", default=[500, 8000])
    p.add_argument("--size", type=int, nargs=2, default=[320, 480], metavar=("H", "W"))
    p.add_argument("--modes", nargs="+", default=["whole", "slide"], choices=["whole", "slide"])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--child", nargs=3, metavar=("K", "MODE", "METHOD"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(model_name: str, num_classes: int, mode: str, method: str, size: tuple[int, int]) -> None:
    """One measurement; prints ``setup_mib peak_mib``."""
    import torch

    import groupvit

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = groupvit.create_model(model_name).eval()
    names = [f"thing number {i}" for i in range(num_classes)]
    seg = groupvit.ZeroShotSegmenter(model, names, mode=mode)
    seg.class_embeddings  # noqa: B018 - cached before the measured call
    images = torch.randn(1, 3, *size)
    setup = _peak_mib()
    if method == "predict":
        seg.predict(images)
    else:
        seg.predict_labels(images)
    print(f"{setup:.0f} {_peak_mib():.0f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        num_classes, mode, method = args.child
        child(args.model, int(num_classes), mode, method, tuple(args.size))
        return 0
    print(f"{args.model}, one {args.size[0]}x{args.size[1]} image, peak RSS in MiB")
    print(f"{'classes':>8} {'mode':>6} {'method':>8} {'setup':>8} {'peak':>8}")
    for num_classes in args.classes:
        for mode in args.modes:
            for method in args.methods:
                cmd = [sys.executable, __file__, "--model", args.model, "--size", *map(str, args.size)]
                cmd += ["--child", str(num_classes), mode, method]
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    print(
                        f"{num_classes:>8} {mode:>6} {method:>8} failed: {out.stderr.strip().splitlines()[-1]}"
                    )
                    continue
                setup, peak = out.stdout.split()[-2:]
                print(f"{num_classes:>8} {mode:>6} {method:>8} {setup:>8} {peak:>8}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
