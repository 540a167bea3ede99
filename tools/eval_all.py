"""Evaluate one checkpoint on a list of benchmark configs and write one table (Markdown and JSON).

    python tools/eval_all.py --checkpoint group_vit_gcc_yfcc_30e-879422e0.pth --out work_dirs/eval_all
    python tools/eval_all.py configs/groupvit/groupvit_s_voc.py configs/groupvit/groupvit_s_voc20.py \
        --checkpoint CKPT --out work_dirs/eval_all --cfg-options model.test_cfg.pamr_iterations=10

Each config runs as its own ``tools/test.py`` process (one failing benchmark does not stop the others),
under ``OUT/<config name>/``. A config whose ``data_root`` is missing gets a row saying which one
and the run goes on; so does a config whose test fails (its last error line is in the table).
Writes ``OUT/results.md`` and ``OUT/results.json``; exit status 1 when any config has no result.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from groupvit.errors import InputError, report_input_errors

ROOT = Path(__file__).resolve().parents[1]
# The zero-shot benchmarks, paper settings first, then the extra ones of the open-vocabulary projects.
DEFAULT_CONFIGS = tuple(
    f"configs/groupvit/groupvit_s_{name}.py"
    for name in (
        "voc",
        "context",
        "coco_object",
        "voc20",
        "context59",
        "coco_stuff171",
        "cityscapes",
        "ade20k150",
    )
)
_METRIC = re.compile(r"\b(aAcc|mIoU|mAcc): ([0-9.]+)")


def data_root(config: str, cfg_options: Sequence[str]) -> str | None:
    """The test set's ``data_root`` of ``config`` (with ``--cfg-options`` applied), or None if it names none."""
    from mmengine.config import Config, DictAction

    cfg = Config.fromfile(config)
    if cfg_options:
        parsed = argparse.ArgumentParser()
        parsed.add_argument("--o", nargs="+", action=DictAction)
        cfg.merge_from_dict(parsed.parse_args(["--o", *cfg_options]).o)
    return cfg.test_dataloader.dataset.get("data_root")


def run_config(config: str, checkpoint: str, work_dir: Path, cfg_options: Sequence[str]) -> dict:
    """One row: ``{"config", "status", "mIoU", "aAcc", "mAcc", "data_root"}`` (metrics in %, or None)."""
    row = {"config": config, "data_root": None, "status": "ok", "mIoU": None, "aAcc": None, "mAcc": None}
    try:
        row["data_root"] = root = data_root(config, cfg_options)
    except Exception as error:  # a config that does not load is that config's row, not the end of the run
        row["status"] = (
            f"config does not load: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
        )
        return row
    if root and not Path(root).is_dir():
        row["status"] = f"missing data_root {root}"
        return row
    command = [
        sys.executable,
        str(ROOT / "tools" / "test.py"),
        config,
        checkpoint,
        "--work-dir",
        str(work_dir),
    ]
    if cfg_options:
        command += ["--cfg-options", *cfg_options]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    output = done.stdout + done.stderr
    metrics = dict(_METRIC.findall(output))
    if done.returncode != 0 or "mIoU" not in metrics:
        lines = [line for line in output.strip().splitlines() if line.strip()]
        row["status"] = f"failed (exit {done.returncode}): {lines[-1] if lines else 'no output'}"
        return row
    row.update({key: float(value) for key, value in metrics.items()})
    return row


def markdown(rows: Sequence[dict], checkpoint: str) -> str:
    lines = [
        f"Checkpoint: `{checkpoint}`",
        "",
        "| config | mIoU | aAcc | mAcc | status |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        cells = ["-" if row[key] is None else f"{row[key]:.2f}" for key in ("mIoU", "aAcc", "mAcc")]
        lines.append(f"| {Path(row['config']).stem} | {' | '.join(cells)} | {row['status']} |")
    return "\n".join(lines) + "\n"


@report_input_errors("eval_all.py")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "configs", nargs="*", default=list(DEFAULT_CONFIGS), help="configs (default: the benchmarks)"
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint file (official, HF or our layout)")
    parser.add_argument("--out", type=Path, default=Path("work_dirs/eval_all"), help="folder for the tables")
    parser.add_argument("--cfg-options", nargs="+", default=[], help="passed to every config's test.py")
    args = parser.parse_args(argv)
    missing = [config for config in args.configs if not Path(config).is_file()]
    if missing:
        raise InputError(f"config {missing[0]} does not exist")
    if not Path(args.checkpoint).is_file() and "://" not in args.checkpoint:
        raise InputError(f"checkpoint {args.checkpoint} does not exist")
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out {args.out} is a file, not a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for config in args.configs:
        row = run_config(config, args.checkpoint, args.out / Path(config).stem, args.cfg_options)
        shown = "-" if row["mIoU"] is None else f"{row['mIoU']:.2f}"
        print(f"{Path(config).stem}: mIoU {shown} ({row['status']})", flush=True)
        rows.append(row)
    (args.out / "results.md").write_text(markdown(rows, args.checkpoint))
    (args.out / "results.json").write_text(
        json.dumps({"checkpoint": args.checkpoint, "rows": rows}, indent=1)
    )
    print(f"wrote {args.out / 'results.md'} and {args.out / 'results.json'}")
    return 0 if all(row["mIoU"] is not None for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
