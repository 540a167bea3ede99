"""Train GroupViT with an mmengine config; the same command line as ``mim train mmseg``.

    python tools/train.py configs/groupvit/groupvit_tiny_synthetic.py [--work-dir DIR] [--resume]
        [--amp] [--cfg-options key=value ...] [--launcher none|pytorch|slurm|mpi]

Multi-GPU: ``torchrun --nproc_per_node N tools/train.py CONFIG --launcher pytorch`` (or
``mim train mmseg CONFIG --gpus N --launcher pytorch``). Unlike mmseg's script, this one
also runs ``--launcher pytorch`` on CPU-only machines (gloo process group).
"""

from __future__ import annotations

import argparse
import logging
import os
import os.path as osp
import sys

from groupvit.errors import report_input_errors


def parse_args() -> argparse.Namespace:
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description="Train GroupViT from image-text data")
    parser.add_argument("config", help="train config file path")
    parser.add_argument("--work-dir", help="the dir to save logs and checkpoints")
    parser.add_argument(
        "--resume", action="store_true", help="resume from the latest checkpoint in the work dir"
    )
    parser.add_argument(
        "--amp", action="store_true", help="mixed precision (turns OptimWrapper into AmpOptimWrapper)"
    )
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        help="override config settings, key=value (e.g. train_cfg.max_iters=100)",
    )
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    # torch.distributed.launch passes --local-rank
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


@report_input_errors("train.py")
def main() -> int:
    args = parse_args()
    import torch
    import torch.distributed as dist
    from mmengine.config import Config
    from mmengine.logging import print_log
    from mmengine.runner import Runner
    from mmseg.registry import RUNNERS

    import mmseg_plugins  # noqa: F401  (compat fixes before mmseg is used; registers our modules)

    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir", None) is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        if cfg.optim_wrapper.type == "AmpOptimWrapper":
            print_log(
                "AMP training is already enabled in the config.", logger="current", level=logging.WARNING
            )
        else:
            cfg.optim_wrapper.type = "AmpOptimWrapper"
            cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
    cfg.resume = args.resume

    if args.launcher == "pytorch" and not torch.cuda.is_available() and not dist.is_initialized():
        # mmengine's init_dist calls torch.cuda.set_device; on a CPU-only machine start gloo here.
        # The runner then finds the process group already initialised.
        dist.init_process_group(backend="gloo")

    runner = Runner.from_cfg(cfg) if "runner_type" not in cfg else RUNNERS.build(cfg)
    runner.train()
    return 0


if __name__ == "__main__":
    sys.exit(main())
