"""``tools/test.py`` (what ``mim test`` runs too) fails with clear messages: wrong data paths, a checkpoint
that does not fit the configured model, a dataset without class names."""

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


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One-image VOC2012 layout and a random groupvit_tiny checkpoint in the official layout."""
    tmp = tmp_path_factory.mktemp("cli_errors")
    voc = tmp / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True)
    Image.fromarray(np.full((24, 32, 3), 90, dtype=np.uint8)).save(voc / "JPEGImages" / "a.jpg")
    Image.fromarray(np.zeros((24, 32), dtype=np.uint8), mode="L").save(voc / "SegmentationClass" / "a.png")
    (voc / "ImageSets/Segmentation/val.txt").write_text("a\n")
    official = convert_state_dict(groupvit.create_model("groupvit_tiny").state_dict(), dst="official")
    torch.save({"model": official}, tmp / "group_vit_tiny_official.pth")
    return tmp


@pytest.mark.parametrize(
    "case, message",
    [
        ("data_root", r"data_root '/nonexistent/VOC2012' does not exist"),
        ("checkpoint", r"does not fit model 'groupvit_tiny'.*shape mismatches"),
        ("no_classes", r"CheckedSegDataset needs class names"),
    ],
)
def test_clear_errors(workspace: Path, case: str, message: str) -> None:
    config, extra = VOC_CONFIG, []
    if case == "data_root":
        extra = ["test_dataloader.dataset.data_root=/nonexistent/VOC2012"]
    elif case == "checkpoint":
        extra = ["model.model_overrides.embed_dim=16"]
    elif case == "no_classes":
        config = ROOT / "configs" / "groupvit" / "groupvit_s_custom.py"
        extra = ["test_dataloader.dataset.metainfo=None"]
    command = [sys.executable, str(ROOT / "tools" / "test.py"), str(config)]
    command += [
        "--checkpoint",
        str(workspace / "group_vit_tiny_official.pth"),
        "--work-dir",
        str(workspace / case),
    ]
    command += ["--cfg-options", "model.model_name=groupvit_tiny", "test_dataloader.num_workers=0"]
    command += ["test_dataloader.persistent_workers=False"]
    command += [f"test_dataloader.dataset.data_root={workspace / 'VOCdevkit' / 'VOC2012'}", *extra]
    result = subprocess.run(command, cwd=workspace, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(message, output, flags=re.S), output[-3000:]
