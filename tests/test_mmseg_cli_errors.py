"""``tools/test.py`` (what ``mim test`` runs too) fails with one clear line and exit status 2, no traceback:
wrong data paths, a checkpoint that does not fit the configured model, a dataset without class names,
label maps with values outside the classes or of the wrong size (raised in a DataLoader worker)."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import groupvit
from groupvit.checkpoint import convert_state_dict

ROOT = Path(__file__).resolve().parents[1]
VOC_CONFIG = ROOT / "configs" / "groupvit" / "groupvit_s_voc.py"


def _voc(root: Path, label: np.ndarray) -> Path:
    """One-image VOC2012 layout with the given label map under ``root/VOCdevkit/VOC2012``."""
    voc = root / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True)
    Image.fromarray(np.full((24, 32, 3), 90, dtype=np.uint8)).save(voc / "JPEGImages" / "a.jpg")
    Image.fromarray(label, mode="L").save(voc / "SegmentationClass" / "a.png")
    (voc / "ImageSets/Segmentation/val.txt").write_text("a\n")
    return voc


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """VOC2012 layouts (good labels, labels outside the 21 classes, labels of the wrong size) and a random
    groupvit_tiny checkpoint in the official layout."""
    tmp = tmp_path_factory.mktemp("cli_errors")
    _voc(tmp, np.zeros((24, 32), dtype=np.uint8))
    _voc(tmp / "values", np.array([[0, 21, 40, 255]], dtype=np.uint8).repeat(24, 0).repeat(8, 1))
    _voc(tmp / "size", np.zeros((20, 32), dtype=np.uint8))
    official = convert_state_dict(groupvit.create_model("groupvit_tiny").state_dict(), dst="official")
    torch.save({"model": official}, tmp / "group_vit_tiny_official.pth")
    return tmp


@pytest.mark.parametrize(
    "case, message",
    [
        ("data_root", r"data_root '/nonexistent/VOC2012' does not exist"),
        ("checkpoint", r"does not fit model 'groupvit_tiny'.*shape mismatches"),
        ("no_classes", r"CheckedSegDataset needs class names"),
        (
            "values",
            r"label map .*a\.png holds values 21, 40 outside the 21 classes \(valid: 0\.\.20, and 255",
        ),
        ("size", r"label map .*a\.png is 20x32 \(HxW\) but its image .*a\.jpg is 24x32: each label map"),
        ("missing_checkpoint", r"checkpoint '.*nothing\.pth' does not exist"),
    ],
)
def test_clear_errors(workspace: Path, case: str, message: str) -> None:
    config, extra, checkpoint, root = VOC_CONFIG, [], workspace / "group_vit_tiny_official.pth", workspace
    if case == "data_root":
        extra = ["test_dataloader.dataset.data_root=/nonexistent/VOC2012"]
    elif case == "checkpoint":
        extra = ["model.model_overrides.embed_dim=16"]
    elif case == "no_classes":
        config = ROOT / "configs" / "groupvit" / "groupvit_s_custom.py"
        extra = ["test_dataloader.dataset.metainfo=None"]
    elif case in ("values", "size"):
        root = workspace / case
    elif case == "missing_checkpoint":
        checkpoint = workspace / "nothing.pth"
    command = [sys.executable, str(ROOT / "tools" / "test.py"), str(config)]
    command += [
        "--checkpoint",
        str(checkpoint),
        "--work-dir",
        str(workspace / case),
    ]
    command += ["--cfg-options", "model.model_name=groupvit_tiny", "test_dataloader.num_workers=0"]
    command += ["test_dataloader.persistent_workers=False"]
    command += [f"test_dataloader.dataset.data_root={root / 'VOCdevkit' / 'VOC2012'}", *extra]
    result = subprocess.run(command, cwd=workspace, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and re.search(message, result.stderr, flags=re.S), result.stderr[-3000:]
    if case == "checkpoint":  # groupvit.checkpoint raises a RuntimeError with the key lists
        return
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and last.startswith("test.py: error: "), result.stderr[-3000:]
    assert re.search(message, last) and "Traceback" not in result.stderr, result.stderr[-3000:]
