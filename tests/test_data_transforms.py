"""timm DeiT / RandAugment training transform and the eval transform."""

import numpy as np
import pytest
import torch
from PIL import Image

from groupvit.data import build_eval_transform, build_train_transform


@pytest.fixture
def image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 100, 3), dtype=np.uint8))


def test_train_transform(image: Image.Image) -> None:
    transform = build_train_transform(64)
    names = [type(t).__name__ for t in transform.transforms]
    assert names[0] == "RandomResizedCropAndInterpolation" and "RandAugment" in names
    assert transform.transforms[0].scale == (0.08, 1.0)
    for _ in range(40):  # many RandAugment draws, posterize at full magnitude included
        out = transform(image)
        assert out.shape == (3, 64, 64) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_posterize_keeps_one_bit(image: Image.Image) -> None:
    transform = build_train_transform(32, auto_augment="rand-m10-n1-mstd0-inc1")
    ra = next(t for t in transform.transforms if type(t).__name__ == "RandAugment")
    ra.ops = [op for op in ra.ops if op.name == "PosterizeIncreasing"]
    ra.ops[0].prob = 1.0
    out = np.asarray(ra(image))
    assert set(np.unique(out)) <= {0, 128}  # 1 bit kept, no Pillow ValueError


def test_train_transform_options(image: Image.Image) -> None:
    transform = build_train_transform(48, scale=(0.5, 1.0), auto_augment=None)
    assert "RandAugment" not in [type(t).__name__ for t in transform.transforms]
    assert transform(image).shape == (3, 48, 48)


def test_grayscale_and_hue_options(image: Image.Image) -> None:
    red = Image.new("RGB", (64, 64), (200, 30, 30))
    grey = build_train_transform(32, scale=(1.0, 1.0), auto_augment=None, grayscale_prob=1.0)
    out = grey(red) * torch.tensor((0.229, 0.224, 0.225))[:, None, None]  # undo the std
    assert torch.allclose(out[0] + 0.485, out[1] + 0.456, atol=1e-5)  # the three channels agree
    hue = build_train_transform(32, scale=(1.0, 1.0), auto_augment=None, color_jitter=[0, 0, 0, 0.5])
    channels = torch.stack([hue(red).mean(dim=(1, 2)) for _ in range(20)])
    assert channels.argmax(dim=1).unique().numel() > 1  # red is not always the brightest channel
    plain = build_train_transform(32, scale=(1.0, 1.0), auto_augment=None, color_jitter=0.0)
    assert torch.equal(plain(red), plain(red))


def test_eval_transform(image: Image.Image) -> None:
    out = build_eval_transform(56)(image)
    assert out.shape == (3, 56, 56)
    # ImageNet normalisation: a mid-grey image maps near zero
    grey = build_eval_transform(32)(Image.new("RGB", (40, 40), (124, 116, 104)))
    assert grey.abs().max() < 0.05
