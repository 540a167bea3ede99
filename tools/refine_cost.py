"""Protocol cost of the refinements: time per image (interleaved rounds in one process) and the extra
peak memory over the paper's protocol (one subprocess per option), random weights, CPU.

    python tools/refine_cost.py --model groupvit_s --size 448 --rounds 3

Each option scores one ImageNet-normalised random image [1, 3, S, S] with ``predict`` (dense scores,
as the mmseg segmentor does) over the 20 VOC classes and background; times are the median of the
rounds, and the options are run in turn within every round so load changes hit them alike.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

OPTIONS: dict[str, dict] = {
    "paper": {},
    "soft groups": {"soft_groups": True},
    "PAMR (10 it.)": {"pamr_iterations": 10},
    "flip": {"flip": True},
    "scales 0.75, 1, 1.25": {"scales": (0.75, 1.0, 1.25)},
    "all of them": {"soft_groups": True, "pamr_iterations": 10, "flip": True, "scales": (0.75, 1.0, 1.25)},
}


def _segmenter(model, refine: dict):
    from groupvit.class_names import VOC_CLASSES
    from groupvit.config import RefineConfig
    from groupvit.zero_shot import ZeroShotSegmenter

    return ZeroShotSegmenter(model, VOC_CLASSES[1:], refine=RefineConfig(**refine))


def _setup(model_name: str, size: int):
    import torch

    import groupvit

    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    return groupvit.create_model(model_name).eval(), torch.randn(1, 3, size, size)


def child(model_name: str, size: int, option: str) -> None:
    """Prints the peak RSS (MiB) after the paper's protocol and after ``option``, one image each."""
    model, image = _setup(model_name, size)
    paper = _segmenter(model, {})
    paper.predict(image)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seg = _segmenter(model, OPTIONS[option])
    _ = seg.class_embeddings
    seg.predict(image)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"paper_mib": before, "option_mib": after}))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="groupvit_s")
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.model, args.size, args.child)
        return 0
    model, image = _setup(args.model, args.size)
    segmenters = {name: _segmenter(model, refine) for name, refine in OPTIONS.items()}
    for seg in segmenters.values():
        seg.predict(image)  # warm-up, and the class embeddings out of the timing
    times: dict[str, list[float]] = {name: [] for name in OPTIONS}
    for _ in range(args.rounds):
        for name, seg in segmenters.items():
            start = time.perf_counter()
            seg.predict(image)
            times[name].append(time.perf_counter() - start)
    results = {}
    for name in OPTIONS:
        out = subprocess.run(
            [sys.executable, __file__, "--model", args.model, "--size", str(args.size), "--child", name],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        memory = json.loads(out.stdout.strip().splitlines()[-1])
        results[name] = {
            "seconds": statistics.median(times[name]),
            "extra_peak_mib": max(0.0, memory["option_mib"] - memory["paper_mib"]),
        }
        print(
            f"{name:24s} {results[name]['seconds']:7.2f} s  +{results[name]['extra_peak_mib']:7.1f} MiB",
            flush=True,
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
