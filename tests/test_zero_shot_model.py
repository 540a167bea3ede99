"""Zero-shot segmentation on the real (tiny, random-weight) GroupViT from the factory."""

import pytest
import torch
import torch.nn.functional as F

import groupvit
from groupvit.zero_shot import ZeroShotSegmenter
from groupvit.zero_shot_functional import stage_group_maps

CLASSES = ["cat", "dog", "person", "tree", "sky", "car", "road"]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return groupvit.create_model("groupvit_tiny").eval()


def test_tiny_preset_geometry(model: torch.nn.Module) -> None:
    # The sliding-window numbers below assume patch 8 and stages of 8 then 4 groups.
    feats = model.forward_segmentation(torch.randn(1, 3, 64, 64))
    assert feats.grid_size == (8, 8)
    assert [tuple(a.shape) for a in feats.assignments] == [(1, 8, 64), (1, 4, 8)]
    torch.testing.assert_close(feats.assignments[0].sum(1), torch.ones(1, 64))  # soft, over groups


def test_whole_equals_slide_when_window_covers_image(model: torch.nn.Module) -> None:
    images = torch.randn(2, 3, 64, 96)
    whole = ZeroShotSegmenter(model, CLASSES).predict(images)
    slide = ZeroShotSegmenter(model, CLASSES, mode="slide", window=(64, 128), stride=32).predict(images)
    assert whole.scores.shape == (2, len(CLASSES) + 1, 64, 96)
    torch.testing.assert_close(slide.scores, whole.scores, rtol=0, atol=0)
    assert torch.equal(slide.labels, whole.labels)


def test_score_features_reuses_a_single_pass(model: torch.nn.Module) -> None:
    images = torch.randn(2, 3, 64, 96)
    slide = ZeroShotSegmenter(model, CLASSES, mode="slide", window=(64, 128), stride=32)
    assert slide.single_pass((64, 96)) and not slide.single_pass((64, 160))
    assert ZeroShotSegmenter(model, CLASSES).single_pass((640, 960))  # whole mode: always
    with torch.no_grad():
        features = model.forward_segmentation(images)
    scores = slide.score_features(features, (64, 96))
    torch.testing.assert_close(scores, slide.predict(images).scores, rtol=0, atol=0)


def test_slide_non_square_shapes(model: torch.nn.Module) -> None:
    images = torch.randn(2, 3, 80, 112)
    seg = ZeroShotSegmenter(model, CLASSES, mode="slide", window=64, stride=32)
    result = seg.predict(images)
    assert result.scores.shape == (2, len(CLASSES) + 1, 80, 112)
    assert result.labels.shape == (2, 80, 112) and result.labels.dtype == torch.long
    assert torch.isfinite(result.scores).all()
    assert result.labels.min() >= 0 and result.labels.max() <= len(CLASSES)
    # Every foreground score is an average of B*A entries (each in [0, 1]); background in [0, 1].
    assert result.scores.min() >= 0 and result.scores.max() <= 1
    # Labels only use background or classes in some window's image-level top-5.
    whole = ZeroShotSegmenter(model, CLASSES, background=False).predict(images)
    assert whole.scores.shape == (2, len(CLASSES), 80, 112)
    assert ((whole.scores > 0).flatten(2).any(-1).sum(-1) <= 5).all()


def test_class_embeddings_match_manual_average(model: torch.nn.Module) -> None:
    seg = ZeroShotSegmenter(model, ["cat", "dog"], templates="subset")
    tokenizer = groupvit.get_tokenizer()
    with torch.no_grad():
        manual = torch.stack(
            [
                model.encode_text(tokenizer([t.format(c) for t in seg.templates])).mean(0)
                for c in ["cat", "dog"]
            ]
        )
    torch.testing.assert_close(seg.class_embeddings, F.normalize(manual, dim=-1))


def test_group_maps_real_model(model: torch.nn.Module) -> None:
    images = torch.randn(1, 3, 80, 112)
    maps = ZeroShotSegmenter(model, CLASSES).group_maps(images)
    assert [tuple(m.shape) for m in maps] == [(1, 80, 112)] * 2
    assert maps[0].max() < 8 and maps[1].max() < 4
    with torch.no_grad():
        feats = model.forward_segmentation(images)
    final = stage_group_maps(feats.assignments)[-1]  # [1, 10*14, 4]
    soft = F.interpolate(final.transpose(1, 2).reshape(1, 4, 10, 14), (80, 112), mode="bilinear")
    assert torch.equal(maps[1], soft.argmax(1))
