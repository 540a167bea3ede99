"""Evaluate a GroupViT checkpoint on a segmentation dataset with mmseg (per-class IoU and mIoU).

Same as ``mim test mmseg CONFIG --checkpoint CKPT``, without mim:

    python tools/test.py configs/groupvit/groupvit_s_voc.py --checkpoint group_vit_gcc_yfcc_30e-879422e0.pth
    python tools/test.py configs/groupvit/groupvit_s_voc.py CKPT --show-dir work_dirs/vis \
        --cfg-options test_dataloader.dataset.data_root=/data/VOC2012

The checkpoint may be in the official, HF transformers or our layout. Bad input (a missing file or
folder, a checkpoint that does not fit, a label map that cannot be scored) ends with one line,
``test.py: error: ...``, and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

import mmseg_plugins  # noqa: F401  (compat layer, then GroupViT's mmseg modules)
from groupvit.errors import InputError, report_input_errors
from mmseg_plugins.user_errors import loop_option_error, original_message


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Zero-shot evaluation of GroupViT with mmseg")
    parser.add_argument("config", help="config file, e.g. configs/groupvit/groupvit_s_voc.py")
    parser.add_argument("checkpoint", nargs="?", help="checkpoint file (official, HF or our layout)")
    parser.add_argument(
        "--checkpoint", dest="checkpoint_opt", metavar="CKPT", help="same as the positional one"
    )
    parser.add_argument("--work-dir", help="where logs and metrics go (default: work_dirs/<config name>)")
    parser.add_argument("--out", help="directory for the predicted label maps (offline evaluation)")
    parser.add_argument("--show", action="store_true", help="show the predictions in a window")
    parser.add_argument("--show-dir", help="write prediction overlays to this directory")
    parser.add_argument("--wait-time", type=float, default=2, help="seconds each image is shown with --show")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        help="override config values, e.g. model.bg_thresh=0.9 test_dataloader.dataset.data_root=DIR",
    )
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = parser.parse_args(argv)
    if args.checkpoint and args.checkpoint_opt and args.checkpoint != args.checkpoint_opt:
        parser.error("give the checkpoint once (positional or --checkpoint)")
    args.checkpoint = args.checkpoint or args.checkpoint_opt
    if args.checkpoint is None:
        parser.error("a checkpoint is required (positional or --checkpoint)")
    if not osp.isfile(args.config):
        parser.error(f"config {args.config!r} does not exist")
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def build_config(args: argparse.Namespace) -> Config:
    """The config with the command line applied, the way mmseg's tools/test.py does it."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        hook = cfg.default_hooks.get("visualization")
        if hook is None:
            raise InputError("--show / --show-dir need default_hooks.visualization (SegVisualizationHook)")
        hook["draw"] = True
        if args.show:
            hook["show"] = True
            hook["wait_time"] = args.wait_time
        if args.show_dir:
            cfg.visualizer["save_dir"] = args.show_dir
    if args.out:
        cfg.test_evaluator["output_dir"] = args.out
        cfg.test_evaluator["keep_results"] = True
    return cfg


@report_input_errors("test.py")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint) and "://" not in args.checkpoint:
        raise InputError(f"checkpoint {args.checkpoint!r} does not exist")
    try:
        cfg = build_config(args)
        # as mmseg's tools/test.py (what `mim test` runs): a config may name its runner
        (RUNNERS.build(cfg) if "runner_type" in cfg else Runner.from_cfg(cfg)).test()
    except (InputError, FileNotFoundError) as error:
        raise type(error)(original_message(error)) from None
    except TypeError as error:
        fix = loop_option_error(
            error
        )  # --cfg-options test_cfg.mode=whole: mmengine's loop, not the segmentor's
        if fix is None:
            raise
        raise fix from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
