"""Evaluation input: load_image for every input kind, EvalTransform's size and values, and the
create_model_and_transforms pair."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import groupvit
from groupvit.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from groupvit.errors import InputError
from groupvit.preprocess import EvalTransform, load_image


def test_load_image_accepts_paths_pil_and_arrays(tmp_path) -> None:
    array = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "x.png")
    for source in (tmp_path / "x.png", str(tmp_path / "x.png"), Image.fromarray(array), array):
        assert np.array_equal(np.asarray(load_image(source)), array)
    grey = load_image(array[..., 0])
    assert grey.mode == "RGB" and np.array_equal(np.asarray(grey)[..., 2], array[..., 0])
    deep = Image.fromarray(np.array([[0, 65535]], dtype=np.uint16))
    assert np.asarray(load_image(deep))[0, :, 0].tolist() == [0, 255]  # scaled, not clipped


def test_load_image_errors(tmp_path) -> None:
    with pytest.raises(InputError, match="image not found"):
        load_image(tmp_path / "none.png")
    Image.new("RGB", (64, 64), "red").save(tmp_path / "ok.jpg", quality=95)
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "ok.jpg").read_bytes()[:300])
    with pytest.raises(InputError, match="cannot read image .*cut.jpg"):
        load_image(tmp_path / "cut.jpg")  # the header parses; decoding all of it does not
    with pytest.raises(InputError, match=r"must be uint8 \[H, W, 3\]"):
        load_image(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InputError, match="must be a path, a PIL image or an HxWx3 uint8 array"):
        load_image(3)


def test_eval_transform_size_and_normalisation() -> None:
    transform = EvalTransform(32)
    out = transform(np.full((10, 20, 3), 255, np.uint8))
    assert out.shape == (3, 32, 64)
    expected = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out[:, 5, 5], expected)
    with pytest.raises(InputError, match="short_side must be a positive"):
        EvalTransform(0)


def test_create_model_and_transforms_uses_the_preset_size() -> None:
    model, transform = groupvit.create_model_and_transforms("groupvit_tiny_synthetic")
    assert not model.training and transform.short_side == 320 == model.config.inference.short_side
    model, transform = groupvit.create_model_and_transforms("groupvit_s")
    assert transform.short_side == 448 and model.config.inference.bg_thresh == 0.95
