"""``ZeroShotSegmenter.predict_labels``: the labels of ``predict`` from the channels that can win."""

import pytest
import torch
from test_zero_shot import FakeGroupViT
from torch import Tensor

import groupvit
import groupvit.zero_shot as zero_shot
from groupvit.sliding_window import average_windows, resize_scores, slide_inference, window_grid
from groupvit.zero_shot import ZeroShotSegmenter
from groupvit.zero_shot_functional import active_channels, gather_scores

NAMES = [f"thing number {i}" for i in range(300)]


@pytest.fixture(scope="module")
def tokenizer() -> groupvit.Tokenizer:
    return groupvit.get_tokenizer()  # built once: loading the BPE vocabulary takes seconds


def test_active_channels_and_gather_by_hand() -> None:
    rows = torch.tensor(
        [[[0.0, 0.0, 0.3, 0.0, 0.7], [0.0, 0.0, 0.0, 0.0, 0.0]]]  # image 0: group 1 scores nothing
    )  # [B=1, G=2, C=5]
    other = torch.zeros(1, 2, 5)
    other[0, 0, 1] = 0.2  # a second pass (window) brings channel 1
    channels = active_channels([rows, other])
    assert channels.tolist() == [0, 1, 2, 4]  # channel 0 always, channel 3 is 0 everywhere
    ids = torch.tensor([[[0, 1, 1], [0, 0, 1]]])  # [1, 2, 3]
    dense = gather_scores(rows, ids)
    assert dense.shape == (1, 5, 2, 3) and dense.is_contiguous(memory_format=torch.channels_last)
    assert dense[0, :, 0, 0].tolist() == pytest.approx([0.0, 0.0, 0.3, 0.0, 0.7])
    compact = gather_scores(rows, ids, channels)
    assert torch.equal(compact, dense[:, channels])
    # Where every score is 0 (group 1) the dense argmax is channel 0, and so is the compact one.
    labels = channels[compact.argmax(dim=1)]
    assert torch.equal(labels, dense.argmax(dim=1)) and labels.tolist() == [[[4, 0, 0], [4, 4, 0]]]


def test_average_windows_matches_slide_inference() -> None:
    images = torch.randn(2, 3, 40, 56)
    grid = window_grid((40, 56), 32, 16)
    windows = [(box, images[:, :, box[0] : box[1], box[2] : box[3]] * (i + 1)) for i, box in enumerate(grid)]
    calls = iter(range(1, len(grid) + 1))
    expected = slide_inference(lambda x: x * next(calls), images, 32, 16, num_channels=3)
    out = average_windows(iter(windows), (40, 56))
    assert torch.equal(out, expected) and out.is_contiguous(memory_format=torch.channels_last)
    assert out[0, 0, 0, 0] == images[0, 0, 0, 0]  # corner: window 1 only
    with pytest.raises(ValueError, match="no windows"):
        average_windows([], (40, 56))


@pytest.mark.parametrize(
    ("mode", "kwargs", "size"),
    [
        ("whole", {}, (24, 40)),
        ("slide", {"window": 16, "stride": 8}, (24, 40)),
        ("slide", {"window": 32, "stride": 32}, (32, 48)),
    ],
)
@pytest.mark.parametrize("background", [True, False])
def test_predict_labels_equal_predict_fake(
    tokenizer: groupvit.Tokenizer, mode: str, kwargs: dict, size: tuple, background: bool
) -> None:
    model = FakeGroupViT().eval()
    seg = ZeroShotSegmenter(model, NAMES[:40], tokenizer, mode=mode, background=background, top_k=2, **kwargs)
    images = torch.randn(3, 3, *size)
    result = seg.predict(images)
    labels = seg.predict_labels(images)
    assert labels.dtype == torch.long and torch.equal(labels, result.labels)
    for output_size in [(37, 61), (size[0] // 2, size[1] * 2)]:
        expected = resize_scores(result.scores, output_size).argmax(dim=1)
        assert torch.equal(seg.predict_labels(images, output_size), expected)


def test_predict_labels_equal_predict_windows_with_different_top_k(
    tokenizer: groupvit.Tokenizer, one_thread: None
) -> None:
    # Random tiny_synthetic weights pick different top-5 classes in different windows: the kept
    # channels are the union over windows, and averaging them gives predict()'s labels exactly.
    torch.manual_seed(0)
    model = groupvit.create_model("groupvit_tiny_synthetic").eval()
    images = torch.randn(2, 3, 80, 176, generator=torch.Generator().manual_seed(1))
    for background in (True, False):
        seg = ZeroShotSegmenter(
            model, NAMES, tokenizer, background=background, bg_thresh=0.5, mode="slide", window=64, stride=32
        )
        result = seg.predict(images)
        used = (result.scores.flatten(2) > 0).any(-1).sum(-1)  # channels with a score, per image
        assert used.max() > 5 + int(background), used  # more than one window's top-5
        assert torch.equal(seg.predict_labels(images), result.labels)
        expected = resize_scores(result.scores, (100, 140)).argmax(dim=1)
        assert torch.equal(seg.predict_labels(images, (100, 140)), expected)


def test_predict_labels_scores_only_the_top_k(
    tokenizer: groupvit.Tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    widths: list[int] = []

    def recording_gather(rows: Tensor, group_ids: Tensor, channels: Tensor | None = None) -> Tensor:
        out = gather_scores(rows, group_ids, channels)
        widths.append(out.shape[1])
        return out

    monkeypatch.setattr(zero_shot, "gather_scores", recording_gather)
    model = FakeGroupViT().eval()
    images = torch.randn(2, 3, 24, 40)
    seg = ZeroShotSegmenter(model, NAMES, tokenizer, mode="slide", window=16, stride=8, top_k=3)
    labels = seg.predict_labels(images, (30, 50))
    windows = len(window_grid((24, 40), 16, 8))
    assert len(widths) == windows and max(widths) <= 1 + 2 * windows * 3  # not 301 channels
    assert torch.equal(labels, resize_scores(seg.predict(images).scores, (30, 50)).argmax(1))
    assert widths[-1] == seg.num_classes == 301  # predict() itself stays dense
