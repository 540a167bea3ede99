"""The grounding tools' shared options: the model and the two background tests."""

from __future__ import annotations

import argparse

import torch

from groupvit.cli.args import at_least, in_range, unit_interval
from groupvit.errors import InputError
from groupvit.grounding import PhraseGrounder

__all__ = ["add_grounder_arguments", "build_grounder"]


def add_grounder_arguments(parser: argparse.ArgumentParser) -> None:
    """--checkpoint, --model, --bg-thresh, --min-similarity, --context, --no-fusion, --short-side,
    --device."""
    parser.add_argument("--checkpoint", required=True, help="weights: a file, a URL or a released tag")
    parser.add_argument("--model", help="model preset (default: read off the checkpoint)")
    parser.add_argument(
        "--bg-thresh",
        type=unit_interval,
        help="zero-shot background test among the phrases (default: preset's)",
    )
    parser.add_argument(
        "--min-similarity",
        type=in_range(-1.0, 1.0, "a cosine similarity"),
        help="a group less similar than this to every phrase is background (default: the preset's)",
    )
    parser.add_argument("--context", action="store_true", help="also read each phrase in its caption")
    parser.add_argument(
        "--no-fusion",
        action="store_true",
        help="run a model with fusion layers as the dual encoder (its groups do not read the caption)",
    )
    parser.add_argument(
        "--short-side",
        type=at_least(1),
        help="inference short side in pixels, at least the model's patch size (default: the preset's)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")


def build_grounder(args: argparse.Namespace) -> PhraseGrounder:
    """The :class:`PhraseGrounder` the options above describe (the checkpoint loaded, eval mode)."""
    from groupvit.cli.models import load_model

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {args.device}: CUDA is not available here (use --device cpu)")
    model = load_model(args.checkpoint, args.model, args.device)
    patch = model.vision.patch_size
    if args.short_side is not None and args.short_side < patch:
        raise InputError(
            f"--short-side {args.short_side}: must be at least the model's patch size, {patch} px"
        )
    return PhraseGrounder(
        model,
        bg_thresh=args.bg_thresh,
        context=args.context,
        min_similarity=args.min_similarity,
        fusion=not args.no_fusion,
        short_side=args.short_side,
    )
