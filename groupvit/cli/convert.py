"""Convert a GroupViT checkpoint between the official, HF transformers and our layouts.

Examples::

    groupvit-convert --from official --to ours group_vit_gcc_yfcc_30e-879422e0.pth groupvit_s_yfcc.pth
    groupvit-convert --to hf groupvit_s_yfcc.pth pytorch_model.bin

``--to hf`` writes a plain state dict that ``transformers.GroupViTModel.load_state_dict`` accepts.
SRC may be a ``.pth`` / ``.bin`` / ``.safetensors`` file, an http(s) URL or a released tag (gcc_yfcc,
gcc_redcaps); it is read without running any code it holds. DST is written with safetensors when
it ends in ``.safetensors`` (``model.safetensors`` for transformers), else with ``torch.save``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from groupvit.checkpoint import LAYOUTS, convert_state_dict, detect_layout, read_checkpoint
from groupvit.checkpoint_io import save_state_dict
from groupvit.errors import InputError, report_input_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="groupvit-convert", description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="src_layout", choices=LAYOUTS, default=None, help="default: detect")
    parser.add_argument("--to", dest="dst_layout", choices=LAYOUTS, default="ours")
    parser.add_argument("src", help="checkpoint file, URL or released tag")
    parser.add_argument(
        "dst", type=Path, help="output file: a plain state dict (.safetensors, else torch.save)"
    )
    return parser.parse_args(argv)


@report_input_errors("groupvit-convert")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dst.is_dir():
        raise InputError(f"output {args.dst} is a directory; give a file name, e.g. {args.dst / 'model.pth'}")
    sd = read_checkpoint(args.src)
    try:
        found = detect_layout(sd)
    except InputError as e:
        raise InputError(f"{args.src}: {e}") from None
    src = args.src_layout or found
    if found != src:
        raise InputError(
            f"{args.src} looks like a {found!r} checkpoint, not {src!r}; drop --from to detect it"
        )
    out = convert_state_dict(sd, src=src, dst=args.dst_layout)
    save_state_dict(out, args.dst)
    print(f"{args.src} ({src}, {len(sd)} entries) -> {args.dst} ({args.dst_layout}, {len(out)} entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
