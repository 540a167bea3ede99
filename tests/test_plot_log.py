"""tools/plot_log.py: training time rebuilt from mmengine's scalar log, val records, the PNG."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from plot_log import read_scalars, split_records  # noqa: E402


def _write_log(work_dir: Path) -> None:
    run = work_dir / "20260101_000000" / "vis_data"
    run.mkdir(parents=True)
    records = [
        {"loss": 9.0, "loss_itc": 4.0, "loss_multi_label": 5.0, "time": 0.6, "iter": 50, "step": 50},
        {"loss": 7.0, "loss_itc": 3.0, "loss_multi_label": 4.0, "time": 1.2, "iter": 100, "step": 100},
        {"aAcc": 80.0, "mIoU": 20.5, "step": 100},
        {"loss": 6.0, "loss_itc": 2.5, "loss_multi_label": 3.5, "time": 0.6, "iter": 200, "step": 200},
        {"aAcc": 85.0, "mIoU": 31.0, "step": 200},
    ]
    (run / "scalars.json").write_text("\n".join(json.dumps(r) for r in records) + "\n")


def test_split_records_rebuilds_training_minutes(tmp_path: Path) -> None:
    _write_log(tmp_path)
    train, val = split_records(read_scalars(tmp_path))
    assert [r["iter"] for r in train] == [50, 100, 200]
    # 50 x 0.6 s + 50 x 1.2 s = 90 s, then + 100 x 0.6 s = 150 s
    assert [round(r["minutes"], 4) for r in train] == [0.5, 1.5, 2.5]
    assert [(r["iter"], r["mIoU"], round(r["minutes"], 4)) for r in val] == [
        (100, 20.5, 1.5),
        (200, 31.0, 2.5),
    ]


def test_cli_writes_png_and_rejects_missing_log(tmp_path: Path) -> None:
    _write_log(tmp_path / "work")
    out = tmp_path / "curve.png"
    run = subprocess.run(
        [sys.executable, str(REPO / "tools" / "plot_log.py"), str(tmp_path / "work"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "mIoU 31.00" in run.stdout
    assert Image.open(out).size == (1100, 400)
    bad = subprocess.run(
        [sys.executable, str(REPO / "tools" / "plot_log.py"), str(tmp_path / "empty"), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "no */vis_data/scalars.json" in bad.stderr


@pytest.mark.parametrize("name", ["scalars.json"])
def test_reads_a_scalars_file_directly(tmp_path: Path, name: str) -> None:
    _write_log(tmp_path)
    path = next(tmp_path.glob(f"*/vis_data/{name}"))
    assert len(read_scalars(path)) == 5
