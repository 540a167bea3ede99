"""Zero-shot segmentation: each protocol step on hand-built tensors, the segmenter on a fake model."""

import math
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from groupvit.sliding_window import resize_scores, slide_inference, window_count, window_grid, window_starts
from groupvit.zero_shot import SegmentationResult, ZeroShotSegmenter
from groupvit.zero_shot_functional import (
    background_channel,
    build_class_embeddings,
    group_class_affinity,
    group_to_pixel_map,
    resize_group_ids,
    scores_from_features,
    stage_group_maps,
)


class Features(NamedTuple):  # same fields as groupvit.models.groupvit.SegmentationFeatures
    assignments: tuple[Tensor, ...]
    group_embeds: Tensor
    image_embeds: Tensor
    grid_size: tuple[int, int]


class FakeGroupViT(nn.Module):
    """Two grouping stages over 4x4-pixel patches; text = sum of token embeddings. Counts calls."""

    def __init__(self, dim: int = 8, groups: tuple[int, int] = (6, 3), patch: int = 4) -> None:
        super().__init__()
        self.patch = patch
        self.pixel_proj = nn.Linear(3, dim)
        self.group_tokens = nn.ParameterList([nn.Parameter(torch.randn(g, dim)) for g in groups])
        self.token_embed = nn.Embedding(49408, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.text_calls = 0
        self.image_shapes: list[tuple[int, ...]] = []

    def encode_text(self, tokens: Tensor, normalize: bool = False) -> Tensor:
        self.text_calls += 1
        out = self.token_embed(tokens).sum(dim=1)
        return F.normalize(out, dim=-1) if normalize else out

    def forward_segmentation(self, images: Tensor) -> Features:
        self.image_shapes.append(tuple(images.shape))
        pooled = F.avg_pool2d(images, self.patch)  # [B, 3, h, w]
        h, w = pooled.shape[-2:]
        tokens = self.pixel_proj(pooled.flatten(2).transpose(1, 2))  # [B, N, D]
        assignments = []
        for group_tokens in self.group_tokens:
            assign = (group_tokens @ tokens.transpose(1, 2)).softmax(dim=1)  # [B, G, N], softmax over groups
            tokens = assign @ tokens / (assign.sum(dim=-1, keepdim=True) + 1.0)
            assignments.append(assign)
        return Features(tuple(assignments), 3.0 * tokens, 2.0 * tokens.mean(dim=1), (h, w))

    def logit_scale_value(self) -> Tensor:
        return self.logit_scale.exp().clamp(max=100)


@pytest.fixture
def fake() -> FakeGroupViT:
    return FakeGroupViT().eval()


# ---------------------------------------------------------------- step 1: class embeddings


def test_class_embeddings_average_unnormalised_then_normalise() -> None:
    names, templates = ["cat", "dog"], ["a {}.", "the {}!", "big {}"]
    prompts_seen: list[str] = []

    def tokenizer(prompts: list[str]) -> Tensor:  # prompt index as its "token"
        prompts_seen.extend(prompts)
        return torch.arange(len(prompts_seen) - len(prompts), len(prompts_seen))[:, None]

    table = torch.tensor(
        [[1.0, 0.0], [0.0, 10.0], [2.0, 2.0], [3.0, 0.0], [0.0, 1.0], [-1.0, 1.0]]
    )  # very different norms per template

    class TextOnly:
        def encode_text(self, tokens: Tensor, normalize: bool = False) -> Tensor:
            return table[tokens[:, 0]]

    out = build_class_embeddings(TextOnly(), tokenizer, names, templates, batch_size=4)
    assert prompts_seen == ["a cat.", "the cat!", "big cat", "a dog.", "the dog!", "big dog"]
    cat = torch.tensor([1 + 0 + 2, 0 + 10 + 2]) / 3  # mean of the unnormalised rows 0-2
    dog = torch.tensor([3 + 0 - 1, 0 + 1 + 1]) / 3
    expected = torch.stack([cat / cat.norm(), dog / dog.norm()])
    torch.testing.assert_close(out, expected)
    # Normalising each template first would give a different (wrong) answer here.
    per_template = F.normalize(table, dim=-1).reshape(2, 3, 2).mean(1)
    assert not torch.allclose(out, F.normalize(per_template, dim=-1), atol=1e-3)


# ---------------------------------------------------------------- step 2: pixel -> group


def test_stage_group_maps_is_product_of_transposed_assignments() -> None:
    a1 = torch.tensor(
        [[[0.7, 0.1, 0.2, 0.5], [0.2, 0.8, 0.3, 0.25], [0.1, 0.1, 0.5, 0.25]]]
    )  # [1, G1=3, N=4]
    a2 = torch.tensor([[[0.9, 0.3, 0.4], [0.1, 0.7, 0.6]]])  # [1, G2=2, N2=G1=3]
    m1, m2 = stage_group_maps([a1, a2])
    torch.testing.assert_close(m1, a1.transpose(1, 2))
    expected = torch.zeros(1, 4, 2)
    for n in range(4):
        for g in range(2):
            expected[0, n, g] = sum(a1[0, j, n] * a2[0, g, j] for j in range(3))
    torch.testing.assert_close(m2, expected)
    assert m2[0, 0, 0].item() == pytest.approx(0.7 * 0.9 + 0.2 * 0.3 + 0.1 * 0.4)
    torch.testing.assert_close(m2.sum(-1), torch.ones(1, 4))  # products of softmaxes stay distributions
    with pytest.raises(ValueError, match="stage 1 assigns 2 tokens"):
        stage_group_maps([a1, torch.rand(1, 2, 2)])


def test_group_to_pixel_map_one_hot_and_upsampling() -> None:
    # 2x3 patch grid; group 0 on the left column, group 1 in the middle, group 2 on the right.
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    group_map = torch.stack([probs[0], probs[1], probs[2], probs[0], probs[1], probs[2]])[None]  # [1, 6, 3]
    one_hot = group_to_pixel_map(group_map, (2, 3), (4, 6))
    assert one_hot.shape == (1, 3, 4, 6) and one_hot.dtype == torch.float32
    assert set(one_hot.unique().tolist()) == {0.0, 1.0}
    assert one_hot.sum(dim=1).eq(1).all()
    expected_ids = torch.tensor([0, 0, 1, 1, 2, 2]).expand(4, 6)
    assert torch.equal(one_hot[0].argmax(0), expected_ids)
    assert torch.equal(resize_group_ids(group_map, (2, 3), (4, 6))[0], expected_ids)
    with pytest.raises(ValueError, match="grid"):
        group_to_pixel_map(group_map, (2, 2), (4, 4))


def test_group_to_pixel_map_resizes_soft_map_before_argmax() -> None:
    # Along a 1x2 grid the soft maps cross between the two patches: bilinear resizing of the
    # soft map (not nearest of the hard ids) decides where the boundary falls.
    group_map = torch.tensor([[[0.6, 0.4], [0.0, 1.0]]])  # patch 0 weakly group 0, patch 1 surely group 1
    ids = resize_group_ids(group_map, (1, 2), (1, 8))[0, 0]
    # align_corners=False: output x samples at (x + 0.5) / 4 - 0.5 in patch units, so pixels 0-1
    # read patch 0 only, pixel 2 reads 0.875*p0 + 0.125*p1 -> group 0 0.525 vs 0.475: group 0;
    # pixel 3 reads 0.625*p0 + 0.375*p1 -> 0.375 vs 0.625: group 1.
    assert ids.tolist() == [0, 0, 0, 1, 1, 1, 1, 1]


# ---------------------------------------------------------------- steps 3-4: group -> class


def _basis(k: int, dim: int) -> Tensor:
    return torch.eye(dim)[:k]


def test_group_class_affinity_top_k_filter_by_hand() -> None:
    classes = _basis(7, 8)  # class k = unit vector e_k
    image = F.normalize(torch.tensor([[5.0, 4, 3, 2, 1, 0, -1, 0]]), dim=-1)  # top-5 of p: classes 0-4
    groups = F.normalize(
        torch.tensor([[[0.0, 0, 0, 0, 0, 0, 1, 0], [0.1, 0.2, 0, 0, 0.3, 0.9, 0, 0]]]), dim=-1
    )
    scale = 10.0
    out = group_class_affinity(groups, image, classes, scale, top_k=5)
    assert out.shape == (1, 2, 7)
    # Classes 5 and 6 are outside the image-level top-5: exactly zero for every group.
    assert out[0, :, 5:].eq(0).all()
    for g in range(2):
        logits = [scale * groups[0, g, k].item() for k in range(7)]
        a = [math.exp(x) / sum(math.exp(y) for y in logits) for x in logits]
        b = [math.exp(x) / sum(math.exp(y) for y in logits[:5]) for x in logits[:5]]
        expected = [b[k] * a[k] for k in range(5)] + [0.0, 0.0]
        torch.testing.assert_close(out[0, g], torch.tensor(expected))
    # Group 1 prefers class 5 overall, but it is filtered out: its best kept class is 4.
    assert groups[0, 1].argmax() == 5 and out[0, 1].argmax() == 4


def test_group_class_affinity_per_image_top_k_and_no_filter_when_k_small() -> None:
    classes = _basis(4, 4)
    images = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]])
    groups = torch.full((2, 3, 4), 0.5)  # uniform: every class equally likely per group
    out = group_class_affinity(groups, images, classes, 5.0, top_k=1)
    # Only the image's own top-1 class survives: B = 1 there, A = 1/4.
    torch.testing.assert_close(out[0], torch.tensor([[0.25, 0, 0, 0]] * 3))
    torch.testing.assert_close(out[1], torch.tensor([[0, 0, 0, 0.25]] * 3))
    # top_k >= K keeps everything: B == A, result A**2.
    groups = F.normalize(torch.randn(2, 3, 4), dim=-1)
    a = (5.0 * groups @ classes.t()).softmax(-1)
    torch.testing.assert_close(group_class_affinity(groups, images, classes, 5.0, top_k=5), a * a)
    with pytest.raises(ValueError, match="top_k"):
        group_class_affinity(groups, images, classes, 5.0, top_k=0)


# ---------------------------------------------------------------- step 5: background


def test_background_channel_threshold() -> None:
    fg = torch.tensor([[[[0.9, 0.1], [0.5, 0.0]], [[0.2, 0.59], [0.61, 0.0]]]])  # [1, K=2, 2, 2]
    affinity = torch.tensor([[[0.6, 0.1], [0.2, 0.3]]])  # max 0.6 < 0.95: threshold becomes 0.6
    bg = background_channel(fg, affinity, bg_thresh=0.95)
    assert bg.shape == (1, 1, 2, 2)
    assert bg[0, 0].tolist() == [[0.0, 1.0], [0.0, 1.0]]  # maxima 0.9, 0.59, 0.61, 0.0
    bg = background_channel(fg, affinity, bg_thresh=0.35)  # 0.35 < 0.6: threshold 0.35
    assert bg[0, 0].tolist() == [[0.0, 0.0], [0.0, 1.0]]
    # Per image: the second image's own affinity max (0.06) caps its threshold.
    fg2 = torch.cat([fg, fg * 0.1])
    bg = background_channel(fg2, torch.cat([affinity, affinity / 10]), bg_thresh=0.95)
    assert bg[0, 0].tolist() == [[0.0, 1.0], [0.0, 1.0]]
    assert bg[1, 0].tolist() == [[0.0, 1.0], [0.0, 1.0]]  # maxima 0.09, 0.059, 0.061, 0 vs 0.06
    bg = background_channel(fg2, torch.cat([affinity, affinity / 100]), bg_thresh=0.95)
    assert bg[1, 0].tolist() == [[0.0, 0.0], [0.0, 1.0]]  # threshold 0.006
    bg = background_channel(fg, affinity, bg_thresh=0.0)
    assert bg.eq(0).all()  # nothing is below 0


def test_scores_from_features_by_hand() -> None:
    # 1x2 patch grid, one stage with 2 groups: patch 0 -> group 0, patch 1 -> group 1.
    assign = torch.tensor([[[0.9, 0.2], [0.1, 0.8]]])
    classes = _basis(3, 4)
    group_embeds = torch.tensor([[[2.0, 0, 0, 0], [0, 0, 0, 5.0]]])  # group 1 matches no class
    features = Features((assign,), group_embeds, torch.tensor([[1.0, 0.5, 0, 0]]), (1, 2))
    scores = scores_from_features(features, classes, 10.0, (2, 4), background=True, bg_thresh=0.95, top_k=2)
    affinity = group_class_affinity(
        F.normalize(group_embeds, dim=-1), F.normalize(features.image_embeds, dim=-1), classes, 10.0, 2
    )
    assert scores.shape == (1, 4, 2, 4)
    torch.testing.assert_close(scores[0, 1:, :, :2], affinity[0, 0][:, None, None].expand(3, 2, 2))
    torch.testing.assert_close(scores[0, 1:, :, 2:], affinity[0, 1][:, None, None].expand(3, 2, 2))
    # Group 1 spreads over classes 0 and 1 (B*A max 0.25 each) -> below min(0.95, max B*A ~ 1): background.
    assert scores[0, 0].tolist() == [[0.0, 0.0, 1.0, 1.0]] * 2
    no_bg = scores_from_features(features, classes, 10.0, (2, 4), background=False, top_k=2)
    torch.testing.assert_close(no_bg, scores[:, 1:])


# ---------------------------------------------------------------- step 6: sliding window


def test_window_grid_tiles_non_square_image() -> None:
    assert window_starts(80, 64, 32) == [0, 16]  # last window shifted back inside
    assert window_starts(112, 64, 32) == [0, 32, 48]
    assert window_starts(50, 64, 32) == [0] and window_starts(64, 64, 64) == [0]
    assert window_starts(10, 4, 3) == [0, 3, 6]
    grid = window_grid((80, 112), 64, 32)
    assert len(grid) == 6 and (16, 80, 48, 112) in grid
    rows = torch.tensor([1] * 16 + [2] * 48 + [1] * 16)  # windows [0, 64) and [16, 80)
    cols = torch.tensor([1] * 32 + [2] * 16 + [3] * 16 + [2] * 32 + [1] * 16)  # [0,64) [32,96) [48,112)
    torch.testing.assert_close(window_count((80, 112), 64, 32), rows[:, None] * cols[None, :])
    assert window_grid((30, 100), (64, 48), (32, 40)) == [(0, 30, 0, 48), (0, 30, 40, 88), (0, 30, 52, 100)]


def test_slide_inference_averages_by_count() -> None:
    images = torch.randn(2, 3, 80, 112)
    crops: list[tuple[int, ...]] = []

    def fn(x: Tensor) -> Tensor:  # per-window constant: its call index, on two channels
        crops.append(tuple(x.shape))
        return torch.full((x.shape[0], 2, *x.shape[-2:]), float(len(crops)))

    out = slide_inference(fn, images, 64, 32, num_channels=2)
    assert out.shape == (2, 2, 80, 112) and len(crops) == 6
    assert all(shape == (2, 3, 64, 64) for shape in crops)
    # Window order (rows, then columns): 1 (0,0) 2 (0,32) 3 (0,48) 4 (16,0) 5 (16,32) 6 (16,48).
    assert out[0, 0, 0, 0] == 1 and out[0, 0, 0, 40] == 1.5 and out[0, 0, 0, 50] == 2
    assert out[1, 1, 20, 50] == pytest.approx((1 + 2 + 3 + 4 + 5 + 6) / 6)
    assert out[0, 0, 79, 111] == 6 and out[0, 0, 70, 100] == 6
    # A pointwise function is reproduced exactly, whatever the overlaps.
    torch.testing.assert_close(slide_inference(lambda x: x * 2, images, 64, 32, 3), images * 2)


def test_slide_inference_small_image_and_errors() -> None:
    images = torch.randn(1, 3, 40, 50)
    shapes: list[tuple[int, ...]] = []
    out = slide_inference(lambda x: shapes.append(tuple(x.shape)) or x[:, :1], images, 64, 32, 1)
    assert shapes == [(1, 3, 40, 50)] and torch.equal(out, images[:, :1])
    with pytest.raises(ValueError, match="stride"):
        slide_inference(lambda x: x, images, 16, 32, 3)
    with pytest.raises(ValueError, match="expected"):
        slide_inference(lambda x: x[:, :2], images, 64, 32, 3)
    with pytest.raises(ValueError, match="positive"):
        slide_inference(lambda x: x, images, 0, 32, 3)


def test_resize_scores() -> None:
    scores = torch.rand(2, 3, 8, 12)
    assert resize_scores(scores, (8, 12)) is scores
    out = resize_scores(scores, (16, 24))
    assert out.shape == (2, 3, 16, 24)
    torch.testing.assert_close(
        out, F.interpolate(scores, size=(16, 24), mode="bilinear", align_corners=False)
    )


# ---------------------------------------------------------------- ZeroShotSegmenter


def test_segmenter_whole_matches_slide_when_window_covers(fake: FakeGroupViT) -> None:
    images = torch.randn(2, 3, 32, 48)
    whole = ZeroShotSegmenter(fake, ["cat", "dog", "tree"]).predict(images)
    assert isinstance(whole, SegmentationResult)
    assert whole.scores.shape == (2, 4, 32, 48) and whole.labels.shape == (2, 32, 48)
    assert whole.labels.dtype == torch.long and torch.equal(whole.labels, whole.scores.argmax(1))
    slide = ZeroShotSegmenter(fake, ["cat", "dog", "tree"], mode="slide", window=(32, 64), stride=16).predict(
        images
    )
    torch.testing.assert_close(slide.scores, whole.scores, rtol=0, atol=0)
    assert fake.image_shapes[-1] == (2, 3, 32, 48)


def test_segmenter_slide_non_square(fake: FakeGroupViT) -> None:
    seg = ZeroShotSegmenter(fake, ["cat", "dog"], background=False, mode="slide", window=16, stride=8)
    result = seg.predict(torch.randn(1, 3, 24, 40))
    assert result.scores.shape == (1, 2, 24, 40)
    assert fake.image_shapes == [(1, 3, 16, 16)] * (2 * 4)
    # Without background the scores are averages of B*A rows: within [0, 1].
    assert result.scores.min() >= 0 and result.scores.max() <= 1


def test_segmenter_background_channel_and_labels(fake: FakeGroupViT) -> None:
    seg = ZeroShotSegmenter(fake, ["cat", "dog", "tree"], bg_thresh=1.0)
    scores = seg.predict(torch.randn(1, 3, 16, 16)).scores
    fg_max = scores[:, 1:].amax(1)
    # bg_thresh 1.0 -> threshold = the image's max affinity: only its best group stays foreground.
    assert torch.equal(scores[:, 0], (fg_max < fg_max.max()).float())
    zero = ZeroShotSegmenter(fake, ["cat", "dog", "tree"], bg_thresh=0.0).predict(torch.randn(1, 3, 16, 16))
    assert zero.scores[:, 0].eq(0).all() and zero.labels.min() >= 1


def test_segmenter_class_embedding_cache(fake: FakeGroupViT) -> None:
    seg = ZeroShotSegmenter(fake, ["cat", "dog"], templates="subset")
    assert fake.text_calls == 0  # lazy: nothing computed in __init__
    emb = seg.class_embeddings
    assert emb.shape == (2, 8) and fake.text_calls == 1
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))
    seg.predict(torch.randn(1, 3, 16, 16))
    seg.predict(torch.randn(1, 3, 16, 16))
    assert fake.text_calls == 1 and seg.class_embeddings is emb
    # Hand computation with the real tokenizer: mean of the 7 unnormalised template embeddings.
    tokens = seg.tokenizer([t.format("dog") for t in seg.templates])
    expected = F.normalize(fake.encode_text(tokens).mean(0), dim=-1)
    torch.testing.assert_close(emb[1], expected.detach())
    fake.double()  # dtype change -> recomputed in float64
    assert seg.class_embeddings.dtype == torch.float64 and fake.text_calls == 3
    with torch.no_grad():
        fake.token_embed.weight.mul_(2.0)  # in-place weight update (e.g. a training step)
    doubled = seg.class_embeddings
    assert fake.text_calls == 4
    seg.reset_cache()
    torch.testing.assert_close(seg.class_embeddings, doubled)
    assert fake.text_calls == 5


def test_segmenter_group_maps(fake: FakeGroupViT) -> None:
    images = torch.randn(2, 3, 24, 40)
    maps = ZeroShotSegmenter(fake, ["cat"]).group_maps(images)
    assert len(maps) == 2
    assert [m.shape for m in maps] == [(2, 24, 40)] * 2 and all(m.dtype == torch.long for m in maps)
    assert maps[0].max() < 6 and maps[1].max() < 3
    feats = fake.forward_segmentation(images)
    product = feats.assignments[0].transpose(1, 2) @ feats.assignments[1].transpose(1, 2)  # [B, N, 3]
    soft = F.interpolate(product.transpose(1, 2).reshape(2, 3, 6, 10), (24, 40), mode="bilinear")
    assert torch.equal(maps[1], soft.argmax(1))


def test_segmenter_warns_in_training_mode(fake: FakeGroupViT) -> None:
    fake.train()
    with pytest.warns(UserWarning, match="eval"):
        ZeroShotSegmenter(fake, ["cat"]).predict(torch.randn(1, 3, 16, 16))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"class_names": []}, "must not be empty"),
        (
            {"class_names": ["cat", "dog", "Cat ", "dog"]},
            r"duplicate class names: 'cat' / 'Cat ', 'dog' / 'dog'",
        ),
        ({"class_names": ["cat", "  "]}, "index 1 is empty"),
        ({"class_names": ["cat", None]}, "index 1"),
        ({"class_names": ["background", "cat"]}, "foreground classes only"),
        ({"bg_thresh": 1.5}, r"bg_thresh must be in \[0, 1\]"),
        ({"bg_thresh": -0.1}, "bg_thresh"),
        ({"window": 0}, "window must be positive"),
        ({"stride": -4}, "stride must be positive"),
        ({"window": 32, "stride": 64}, "must not exceed window"),
        ({"mode": "tiles"}, "mode must be"),
        ({"top_k": 0}, "top_k"),
        ({"templates": "nope"}, "unknown template set"),
        ({"templates": ["no slot"]}, "exactly one"),
    ],
)
def test_segmenter_argument_errors(fake: FakeGroupViT, kwargs: dict, match: str) -> None:
    kwargs = {"class_names": ["cat", "dog"], **kwargs}
    with pytest.raises(ValueError, match=match):
        ZeroShotSegmenter(fake, **kwargs)


def test_segmenter_class_names_type_and_background_off(fake: FakeGroupViT) -> None:
    with pytest.raises(TypeError, match="list of str"):
        ZeroShotSegmenter(fake, "cat")
    seg = ZeroShotSegmenter(fake, ["background", "cat"], background=False)  # allowed as a text class
    assert seg.num_classes == 2


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (torch.randn(3, 16, 16), r"\[B, 3, H, W\], got \(3, 16, 16\)"),
        (torch.randn(1, 1, 16, 16), r"got \(1, 1, 16, 16\)"),
        (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), "must be float"),
        ([[0.0]], "got list"),
    ],
)
def test_segmenter_image_errors(fake: FakeGroupViT, images: object, match: str) -> None:
    seg = ZeroShotSegmenter(fake, ["cat"])
    with pytest.raises(ValueError, match=match):
        seg.predict(images)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        seg.group_maps(images)  # type: ignore[arg-type]


def test_segmenter_model_built_in_inference_mode() -> None:
    with torch.inference_mode():  # parameters without a version counter
        model = FakeGroupViT().eval()
        result = ZeroShotSegmenter(model, ["cat", "dog"]).predict(torch.randn(1, 3, 16, 16))
    assert result.scores.shape == (1, 3, 16, 16)
