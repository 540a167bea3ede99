"""``ZeroShotSegmenter`` on unusual input: empty batches, non-finite images, fixed class lists."""

import pytest
import torch
from test_zero_shot import FakeGroupViT

from groupvit.errors import InputError
from groupvit.zero_shot import ZeroShotSegmenter


@pytest.fixture
def fake() -> FakeGroupViT:
    return FakeGroupViT().eval()


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_empty_batch_gives_empty_results(fake: FakeGroupViT, mode: str) -> None:
    seg = ZeroShotSegmenter(fake, ["cat", "dog"], mode=mode, window=16, stride=8)
    empty = torch.zeros(0, 3, 24, 40)
    result = seg.predict(empty)
    assert result.scores.shape == (0, 3, 24, 40) and result.scores.dtype == torch.float32
    assert result.labels.shape == (0, 24, 40) and result.labels.dtype == torch.long
    assert fake.image_shapes == []  # no forward pass for nothing
    assert seg.predict_labels(empty).shape == (0, 24, 40)
    out = seg.predict_labels(empty, (50, 60))
    assert out.shape == (0, 50, 60) and out.dtype == torch.long
    maps = seg.group_maps(empty)
    assert [tuple(m.shape) for m in maps] == [(0, 24, 40)] * 2 and maps[0].dtype == torch.long


def test_non_finite_images_name_their_index(fake: FakeGroupViT) -> None:
    seg = ZeroShotSegmenter(fake, ["cat"])
    images = torch.randn(4, 3, 16, 16)
    images[1] = float("nan")  # an all-NaN image used to get labels
    images[3, 2, 5, 7] = float("inf")
    match = r"images \[1, 3\] of the batch of 4 hold NaN or infinite values: check the image loading"
    for call in (seg.predict, seg.predict_labels, seg.group_maps):
        with pytest.raises(InputError, match=match):
            call(images)
    assert fake.image_shapes == []


def test_class_names_and_templates_are_read_only(fake: FakeGroupViT) -> None:
    seg = ZeroShotSegmenter(fake, ["cat", "dog"])
    images = torch.randn(1, 3, 16, 16)
    before = seg.predict(images).scores
    with pytest.raises(AttributeError, match=r"build a new ZeroShotSegmenter\(model, class_names"):
        seg.class_names = ["tree", "sky", "car"]
    with pytest.raises(AttributeError, match="templates is fixed"):
        seg.templates = ["a {}"]
    assert seg.class_names == ("cat", "dog") and seg.templates == ("a photo of a {}.",)
    assert torch.equal(seg.predict(images).scores, before)
    # The supported way: a new segmenter, with its own embeddings and channels.
    other = ZeroShotSegmenter(fake, ["tree", "sky", "car"]).predict(images)
    assert other.scores.shape == (1, 4, 16, 16)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"class_names": []}, "class_names must not be empty: pass at least one class name"),
        (
            {"class_names": ["cat", "CAT"]},
            r"duplicate class names: 'cat' / 'CAT' \(the text encoder ignores case",
        ),
        ({"class_names": ["cat", ""]}, "class name at index 1 is empty"),
        ({"class_names": ["background", "cat"]}, "foreground classes only"),
        ({"bg_thresh": 2.0}, r"bg_thresh must be in \[0, 1\], got 2.0"),
        ({"top_k": True}, "top_k must be a positive int, got True"),
        ({"mode": "tiles"}, "mode must be 'whole' or 'slide', got 'tiles'"),
        ({"window": 32, "stride": 64}, r"stride \(64, 64\) must not exceed window \(32, 32\)"),
    ],
)
def test_bad_arguments_are_input_errors(fake: FakeGroupViT, kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        ZeroShotSegmenter(fake, **{"class_names": ["cat", "dog"], **kwargs})


def test_bad_images_are_input_errors(fake: FakeGroupViT) -> None:
    seg = ZeroShotSegmenter(fake, ["cat"])
    with pytest.raises(InputError, match=r"\[B, 3, H, W\], got \(3, 16, 16\)"):
        seg.predict_labels(torch.randn(3, 16, 16))
    with pytest.raises(InputError, match="must be float"):
        seg.predict(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
