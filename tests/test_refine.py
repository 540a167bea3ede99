"""Test-time refinements (groupvit.refine, RefineConfig): the maths on hand-built tensors, the options
on ZeroShotSegmenter, and the paper protocol unchanged bit for bit with every option off."""

import pytest
import torch
import torch.nn.functional as F

import groupvit
from groupvit.config import RefineConfig
from groupvit.errors import InputError
from groupvit.refine.pamr import neighbour_offsets, pamr, pamr_affinity, pamr_matrix
from groupvit.refine.soft_groups import mix_scores, pixel_group_weights
from groupvit.refine.synonyms import synonym_embeddings
from groupvit.refine.tta import View, apply_view, tta_views, undo_view, view_size
from groupvit.sliding_window import slide_inference
from groupvit.tokenizer import Tokenizer
from groupvit.zero_shot import ZeroShotSegmenter
from groupvit.zero_shot_functional import (
    build_class_embeddings,
    gather_scores,
    group_scores,
    pixel_group_ids,
    scores_from_features,
)

CLASSES = ["cat", "dog", "grass", "sky"]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = groupvit.create_model("groupvit_tiny").eval()
    with torch.no_grad():
        model.logit_scale.fill_(4.0)  # sharper than at init, so groups take different classes
    return model


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, 3, 64, 96)


def _segmenter(model, tokenizer, **kwargs) -> ZeroShotSegmenter:
    return ZeroShotSegmenter(model, CLASSES, tokenizer=tokenizer, bg_thresh=0.5, top_k=3, **kwargs)


# -- the paper protocol stays exact -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_defaults_equal_the_protocol_bit_for_bit(model, tokenizer, images, mode: str) -> None:
    seg = _segmenter(model, tokenizer, mode=mode, window=48, stride=32)
    explicit = _segmenter(model, tokenizer, mode=mode, window=48, stride=32, refine=RefineConfig())
    embeds, scale = seg.class_embeddings, model.logit_scale_value()

    def protocol(crop: torch.Tensor) -> torch.Tensor:
        features = model.forward_segmentation(crop)
        return scores_from_features(features, embeds, scale, crop.shape[-2:], True, 0.5, 3)

    with torch.no_grad():
        expected = protocol(images) if mode == "whole" else slide_inference(protocol, images, 48, 32, 5)
    assert torch.equal(seg.predict(images).scores, expected)
    assert torch.equal(explicit.predict(images).scores, expected)
    assert RefineConfig().is_identity and not RefineConfig(flip=True).is_identity


def test_shipped_configs_leave_every_refinement_off() -> None:
    from pathlib import Path

    from mmengine.config import Config

    fields = {"pamr_iterations", "pamr_dilations", "soft_groups", "scales", "flip"}
    for path in sorted(Path("configs/groupvit").glob("*.py")):
        test_cfg = Config.fromfile(str(path)).model.get("test_cfg", {})
        assert not fields & set(test_cfg), path


# -- PAMR ----------------------------------------------------------------------------------------------


def test_pamr_affinity_rows_sum_to_one_and_stop_at_colour_edges() -> None:
    image = torch.zeros(1, 3, 8, 8)
    image[:, 0, :, 4:] = 1.0  # left black, right red
    affinity = pamr_affinity(image, dilations=(1,))
    assert affinity.shape == (1, 8, 8, 8)
    torch.testing.assert_close(affinity.sum(dim=1), torch.ones(1, 8, 8))
    # pixel (3, 3) is left of the edge: its 3 right-hand neighbours (dx = +1) are red and get ~0
    right = [j for j, (dy, dx) in enumerate(neighbour_offsets((1,))) if dx == 1]
    left = [j for j, (dy, dx) in enumerate(neighbour_offsets((1,))) if dx < 1]
    assert float(affinity[0, right, 3, 3].sum()) < 1e-3 < 0.99 < float(affinity[0, left, 3, 3].sum())
    assert neighbour_offsets((1, 2))[8] == (-2, -2)


def test_pamr_moves_a_blurred_boundary_onto_the_colour_edge() -> None:
    image = torch.zeros(1, 3, 16, 16)
    image[:, 2, :, 10:] = 1.0  # the true edge between columns 9 and 10
    scores = torch.zeros(1, 2, 16, 16)
    scores[:, 0, :, :7] = 1.0  # the scores' edge at column 7 (as from a coarse patch grid)
    scores[:, 1, :, 7:] = 1.0
    scores[:, 0, :, 7:10] = 0.45  # columns 7-9: wrongly class 1 (0.55 vs 0.45)
    scores[:, 1, :, 7:10] = 0.55
    refined = pamr(image, scores, iterations=10, dilations=(1, 2, 4))
    assert (refined.argmax(1)[0, :, :10] == 0).all() and (refined.argmax(1)[0, :, 10:] == 1).all()
    assert (scores.argmax(1)[0, :, 7:10] == 1).all()  # it was wrong before
    torch.testing.assert_close(refined.sum(dim=1), torch.ones(1, 16, 16))  # a convex mix of neighbours


def test_pamr_refines_channels_independently_and_keeps_zeros() -> None:
    torch.manual_seed(0)
    image, scores = torch.rand(2, 3, 12, 10), torch.rand(2, 4, 12, 10)
    scores[:, 2] = 0.0
    full = pamr(image, scores, iterations=3, dilations=(1, 3))
    part = pamr(image, scores[:, [0, 3]], iterations=3, dilations=(1, 3))
    assert torch.equal(full[:, [0, 3]], part)
    assert torch.equal(full[:, 2], torch.zeros(2, 12, 10))
    assert pamr(image, scores, iterations=0) is scores
    with pytest.raises(ValueError, match=r"images \(2, 3, 12, 10\) and scores \(2, 4, 6, 10\) differ"):
        pamr(image, scores[..., :6, :], iterations=1)


def test_pamr_matrix_steps_equal_pamr() -> None:
    torch.manual_seed(0)
    image, scores = torch.rand(2, 3, 12, 10), torch.rand(2, 4, 12, 10)
    matrix = pamr_matrix(image, dilations=(1, 2, 5))  # a ring past the border: replicated pixels
    assert matrix.shape == (2, 120, 120)
    torch.testing.assert_close(matrix.sum(dim=2), torch.ones(2, 120))
    stepped = scores.flatten(2)
    for _ in range(3):
        stepped = stepped @ matrix.transpose(1, 2)
    expected = pamr(image, scores, iterations=3, dilations=(1, 2, 5))
    torch.testing.assert_close(stepped.view(2, 4, 12, 10), expected, rtol=1e-5, atol=1e-6)


# -- soft groups ---------------------------------------------------------------------------------------


def test_mix_scores_with_one_hot_weights_is_gather_scores() -> None:
    torch.manual_seed(0)
    rows, ids = torch.rand(2, 5, 7), torch.randint(0, 5, (2, 6, 4))
    weights = F.one_hot(ids, 5).permute(0, 3, 1, 2).float()
    assert torch.equal(mix_scores(rows, weights), gather_scores(rows, ids))
    channels = torch.tensor([0, 3])
    assert torch.equal(mix_scores(rows, weights, channels), gather_scores(rows, ids, channels))


def test_pixel_group_weights_are_distributions_whose_argmax_is_the_protocols(model, images) -> None:
    with torch.no_grad():
        features = model.forward_segmentation(images)
    weights = pixel_group_weights(features, (64, 96))
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2, 64, 96))
    assert torch.equal(weights.argmax(dim=1), pixel_group_ids(features, (64, 96)))


def test_soft_groups_score_each_pixel_by_its_group_mix(model, tokenizer, images) -> None:
    seg = _segmenter(model, tokenizer, refine=RefineConfig(soft_groups=True))
    with torch.no_grad():
        features = model.forward_segmentation(images)
        rows = group_scores(features, seg.class_embeddings, model.logit_scale_value(), True, 0.5, 3)
    expected = torch.einsum("bgc,bghw->bchw", rows, pixel_group_weights(features, (64, 96)))
    result = seg.predict(images)
    torch.testing.assert_close(result.scores, expected)
    assert torch.equal(seg.predict_labels(images), result.labels)


# -- test-time augmentation ----------------------------------------------------------------------------


def test_views_and_their_inverse() -> None:
    assert tta_views((1.0, 1.5), True) == [
        View(1.0, False),
        View(1.0, True),
        View(1.5, False),
        View(1.5, True),
    ]
    images = torch.rand(1, 3, 10, 20)
    assert apply_view(images, View(1.0, False)) is images
    assert apply_view(images, View(0.5, True)).shape == (1, 3, 5, 10)
    assert torch.equal(undo_view(apply_view(images, View(1.0, True)), View(1.0, True), (10, 20)), images)
    assert tta_views((1.0,), False, (0, 4)) == [View(1.0, False, (d, r)) for d in (0, 4) for r in (0, 4)]
    shifted = apply_view(images, View(1.0, True, (4, 2)))
    assert shifted.shape == (1, 3, 18, 24) and view_size((10, 20), View(1.0, True, (4, 2))) == (18, 24)
    assert torch.equal(shifted[..., 4:14, 2:22], images.flip(3))
    assert torch.equal(
        shifted[..., :4, 2:22], images.flip(3)[..., :1, :].expand(1, 3, 4, 20)
    )  # edge repeated
    assert torch.equal(undo_view(shifted, View(1.0, True, (4, 2)), (10, 20)), images)


@pytest.mark.slow
def test_shifted_views_average_the_shifted_passes(model, tokenizer, images) -> None:
    plain = _segmenter(model, tokenizer)
    shifted = _segmenter(model, tokenizer, refine=RefineConfig(shifts=(0, 8)))
    pads = [(down, right) for down in (0, 8) for right in (0, 8)]
    padded = [plain.predict(F.pad(images, (r, r, d, d), mode="replicate")).scores for d, r in pads]
    views = [scores[..., d : d + 64, r : r + 96] for scores, (d, r) in zip(padded, pads, strict=True)]
    result = shifted.predict(images)
    torch.testing.assert_close(result.scores, torch.stack(views).mean(dim=0))
    assert torch.equal(shifted.predict_labels(images), result.labels)
    assert not shifted.single_pass((64, 96))


@pytest.mark.slow
def test_flip_and_scales_average_the_views(model, tokenizer, images) -> None:
    plain = _segmenter(model, tokenizer)
    tta = _segmenter(model, tokenizer, refine=RefineConfig(scales=(1.0, 0.5), flip=True))
    views = [
        plain.predict(images).scores,
        plain.predict(images.flip(3)).scores.flip(3),
        F.interpolate(plain.predict(F.interpolate(images, size=(32, 48), mode="bilinear")).scores, size=(64, 96), mode="bilinear"),
        F.interpolate(plain.predict(F.interpolate(images, size=(32, 48), mode="bilinear").flip(3)).scores.flip(3), size=(64, 96), mode="bilinear"),
    ]  # fmt: skip
    result = tta.predict(images)
    torch.testing.assert_close(result.scores, torch.stack(views).mean(dim=0))
    assert torch.equal(tta.predict_labels(images), result.labels)
    assert not tta.single_pass((64, 96)) and plain.single_pass((64, 96))


@pytest.mark.slow
def test_all_refinements_together_keep_predict_labels_exact(model, tokenizer, images) -> None:
    refine = RefineConfig(
        pamr_iterations=3, pamr_dilations=(1, 2), soft_groups=True, scales=(1.0, 0.75), flip=True
    )
    seg = _segmenter(model, tokenizer, mode="slide", window=48, stride=32, refine=refine)
    assert torch.equal(seg.predict_labels(images), seg.predict(images).labels)
    assert "refine=RefineConfig(pamr_iterations=3" in repr(seg)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"pamr_iterations": -1},
            r"pamr_iterations >= 0 and dilations >= 1, got -1 and \(1, 2, 4, 8, 12, 24\)",
        ),
        ({"pamr_iterations": 2.5}, r"pamr_iterations must be an int >= 0, got 2.5"),
        ({"pamr_dilations": (0, 1)}, r"dilations >= 1, got 0 and \(0, 1\)"),
        ({"scales": ()}, r"refine scales must be positive, got \(\)"),
        ({"scales": (1.0, -0.5)}, r"refine scales must be positive, got \(1.0, -0.5\)"),
        ({"shifts": (0, -4)}, r"refine shifts must be pixel counts >= 0, got \(0, -4\)"),
    ],
)
def test_refine_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        RefineConfig(**kwargs)


def test_refine_must_be_a_refine_config(model, tokenizer) -> None:
    with pytest.raises(TypeError, match="refine must be a groupvit.config.RefineConfig, got dict"):
        _segmenter(model, tokenizer, refine={"flip": True})


# -- synonyms ------------------------------------------------------------------------------------------


def test_synonym_embeddings_average_the_names(model, tokenizer) -> None:
    one = synonym_embeddings(model, tokenizer, [("cat",), ("dog",)], ["a photo of a {}."])
    torch.testing.assert_close(
        one, build_class_embeddings(model, tokenizer, ["cat", "dog"], ["a photo of a {}."])
    )
    two = synonym_embeddings(model, tokenizer, [("cat", "kitten"), ("dog",)], ["a photo of a {}."])
    names = build_class_embeddings(model, tokenizer, ["cat", "kitten"], ["a photo of a {}."])
    torch.testing.assert_close(two[0], F.normalize(names.sum(0), dim=0))
    seg = _segmenter(model, tokenizer, synonyms=[("cat", "kitten"), ("dog",), ("grass",), ("sky", "clouds")])
    assert seg.class_embeddings.shape == (4, model.config.embed_dim)
    torch.testing.assert_close(seg.class_embeddings[0], two[0])


@pytest.mark.parametrize(
    ("synonyms", "message"),
    [
        ([("cat",)], "synonyms has 1 lists for 4 class names: give one per class"),
        ([("cat",), (), ("grass",), ("sky",)], r"synonyms of class 1 must be a non-empty list of non-blank str, got \(\)"),
        ([("cat",), ("dog", " "), ("grass",), ("sky",)], "synonyms of class 1 must be a non-empty list"),
    ],
)  # fmt: skip
def test_synonym_errors(model, tokenizer, synonyms, message: str) -> None:
    with pytest.raises(InputError, match=message):
        _segmenter(model, tokenizer, synonyms=synonyms)
