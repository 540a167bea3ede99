"""Convert a GroupViT checkpoint between the official, HF transformers and our layouts.

Examples::

    python tools/convert_checkpoint.py --from official --to ours group_vit_gcc_yfcc_30e-879422e0.pth groupvit_s_yfcc.pth
    python tools/convert_checkpoint.py --to hf groupvit_s_yfcc.pth pytorch_model.bin

``--to hf`` writes a plain state dict that ``transformers.GroupViTModel.load_state_dict`` accepts.
SRC may also be an http(s) URL or a released tag (gcc_yfcc, gcc_redcaps).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from groupvit.checkpoint import LAYOUTS, convert_state_dict, detect_layout, read_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="src_layout", choices=LAYOUTS, default=None, help="default: detect")
    parser.add_argument("--to", dest="dst_layout", choices=LAYOUTS, default="ours")
    parser.add_argument("src", help="checkpoint file, URL or released tag")
    parser.add_argument("dst", type=Path, help="output file (torch.save of a plain state dict)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sd = read_checkpoint(args.src)
    src = args.src_layout or detect_layout(sd)
    if detect_layout(sd) != src:
        raise SystemExit(f"{args.src} looks like a {detect_layout(sd)!r} checkpoint, not {src!r}")
    out = convert_state_dict(sd, src=src, dst=args.dst_layout)
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, args.dst)
    print(f"{args.src} ({src}, {len(sd)} entries) -> {args.dst} ({args.dst_layout}, {len(out)} entries)")


if __name__ == "__main__":
    main()
