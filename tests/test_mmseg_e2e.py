"""End to end: ``mim test mmseg CONFIG --checkpoint CKPT`` and ``tools/test.py`` on a tiny VOC-layout dataset.

A random ``groupvit_tiny`` checkpoint in the official layout; the printed per-class IoU table must
equal the metric computed here from ``groupvit``'s own zero-shot output on the same images.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import groupvit
from groupvit.checkpoint import convert_state_dict
from groupvit.class_names import VOC_CLASSES

ROOT = Path(__file__).resolve().parents[1]
VOC_CONFIG = ROOT / "configs" / "groupvit" / "groupvit_s_voc.py"
BIN = Path(sys.executable).parent
VOC_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
SAMPLES = ("2007_000032", "2007_000039", "2007_000063")
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """VOC2012 layout (JPEG images, P-mode label PNGs with 255 borders, split file) + official checkpoint."""
    tmp = tmp_path_factory.mktemp("e2e")
    voc = tmp / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    palette = [c for i in range(256) for c in (i * 37 % 256, i * 91 % 256, i * 53 % 256)]
    for index, name in enumerate(SAMPLES):
        height, width = (36, 48) if index != 1 else (40, 32)  # one portrait image
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        image[:, : width // 2] //= 3  # a darker left half
        Image.fromarray(image).save(voc / "JPEGImages" / f"{name}.jpg", quality=95)
        label = np.zeros((height, width), dtype=np.uint8)
        label[:, width // 2 :] = (15, 8, 12)[index]  # person, cat, dog
        label[height // 3 : 2 * height // 3, 2:8] = 11  # diningtable
        label[0, :] = 255  # void border, ignored
        png = Image.fromarray(label, mode="P")
        png.putpalette(palette)
        png.save(voc / "SegmentationClass" / f"{name}.png")
    (voc / "ImageSets/Segmentation/val.txt").write_text("".join(f"{n}\n" for n in SAMPLES))

    torch.manual_seed(0)
    model = groupvit.create_model("groupvit_tiny")
    with torch.no_grad():  # sharper than at init, so that predictions mix classes (see test_mmseg_segmentor)
        model.logit_scale.fill_(4.0)
        for key, param in model.named_parameters():
            if key.endswith(("grouping.assign.q_proj.weight", "grouping.assign.k_proj.weight")):
                param.mul_(8.0)
    official = convert_state_dict(model.state_dict(), dst="official")
    torch.save({"model": official, "epoch": 30}, tmp / "group_vit_tiny_official.pth")
    return tmp


def _cfg_options(workspace: Path, *extra: str) -> list[str]:
    return [
        "--cfg-options",
        "model.model_name=groupvit_tiny",
        f"test_dataloader.dataset.data_root={workspace / 'VOCdevkit' / 'VOC2012'}",
        "test_dataloader.num_workers=0",
        "test_dataloader.persistent_workers=False",
        *extra,
    ]


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _printed_table(output: str) -> tuple[dict[str, float], float]:
    """Per-class IoU from mmseg's table (nan kept) and the summary mIoU."""
    rows = re.findall(r"^\|\s*([a-z ]+?)\s*\|\s*([\d.]+|nan)\s*\|\s*([\d.]+|nan)\s*\|$", output, flags=re.M)
    miou = re.findall(r"mIoU: ([\d.]+)", output)
    assert rows and miou, output[-3000:]
    return {name: float(iou) for name, iou, _ in rows}, float(miou[-1])


def _expected_table(workspace: Path, mode: str) -> dict[str, float]:
    """The metric from groupvit's own zero-shot output: the paper's protocol, computed here step by step."""
    model = groupvit.create_model(
        "groupvit_tiny", checkpoint=workspace / "group_vit_tiny_official.pth"
    ).eval()
    names = list(VOC_CLASSES[1:])  # the official spellings the VOC config feeds the text encoder
    segmenter = groupvit.ZeroShotSegmenter(
        model, names, bg_thresh=0.95, top_k=5, mode=mode, window=448, stride=224
    )
    voc = workspace / "VOCdevkit" / "VOC2012"
    intersect, union = np.zeros(21), np.zeros(21)
    for name in SAMPLES:
        bgr = cv2.imread(str(voc / "JPEGImages" / f"{name}.jpg"))
        height, width = bgr.shape[:2]
        scale = min(2048 / max(height, width), 448 / min(height, width))  # short side 448
        size = (int(width * scale + 0.5), int(height * scale + 0.5))
        rgb = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)[..., ::-1].astype(np.float32)
        x = torch.from_numpy((rgb - MEAN) / STD).permute(2, 0, 1)[None].float()
        scores = F.interpolate(
            segmenter.predict(x).scores, (height, width), mode="bilinear", align_corners=False
        )
        pred = scores.argmax(1)[0].numpy()
        gt = np.array(Image.open(voc / "SegmentationClass" / f"{name}.png"))
        valid = gt != 255
        for c in range(21):
            p, g = (pred == c) & valid, (gt == c) & valid
            intersect[c] += (p & g).sum()
            union[c] += (p | g).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.round(intersect / union * 100, 2)
    return dict(zip(VOC_NAMES, iou.tolist()))


def _assert_tables_match(printed: dict[str, float], miou: float, expected: dict[str, float]) -> None:
    assert list(printed) == list(VOC_NAMES)
    for name in VOC_NAMES:
        got, want = printed[name], expected[name]
        assert (np.isnan(got) and np.isnan(want)) or abs(got - want) <= 0.011, (name, got, want)
    assert abs(miou - np.nanmean(list(expected.values()))) <= 0.011
    assert sum(not np.isnan(v) for v in printed.values()) >= 3  # classes besides background were scored


def test_mim_test_prints_the_expected_miou_table(workspace: Path) -> None:
    command = [str(BIN / "mim"), "test", "mmseg", str(VOC_CONFIG), "--checkpoint"]
    command += [str(workspace / "group_vit_tiny_official.pth"), "--work-dir", str(workspace / "work_mim")]
    result = _run(command + _cfg_options(workspace), cwd=workspace)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    printed, miou = _printed_table(output)
    _assert_tables_match(printed, miou, _expected_table(workspace, "slide"))


def test_tools_test_whole_mode_and_show_dir(workspace: Path) -> None:
    show_dir = workspace / "show"
    command = [sys.executable, str(ROOT / "tools" / "test.py"), str(VOC_CONFIG)]
    command += [str(workspace / "group_vit_tiny_official.pth"), "--work-dir", str(workspace / "work_tool")]
    command += ["--show-dir", str(show_dir)]
    result = _run(command + _cfg_options(workspace, "model.test_cfg.mode=whole"), cwd=workspace)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    printed, miou = _printed_table(output)
    _assert_tables_match(printed, miou, _expected_table(workspace, "whole"))
    overlays = {p.name: p for p in show_dir.rglob("*.png")}
    # Per image: test_<image file>_<step>.png (ground truth | prediction), then one picture per stage.
    for name in SAMPLES:
        image = Image.open(workspace / "VOCdevkit" / "VOC2012" / "JPEGImages" / f"{name}.jpg")
        assert Image.open(overlays[f"test_{name}.jpg_0.png"]).size == (2 * image.width, image.height)
        for stage in (1, 2):
            assert Image.open(overlays[f"test_{name}.jpg_stage{stage}_0.png"]).size == image.size
    assert len(overlays) == 3 * len(SAMPLES)
