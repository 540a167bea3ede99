"""Grounding training: train phrase ground truth, GLIP's group-phrase alignment loss, the train model."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from groupvit.grounding_metric import read_grounding_jsonl
from groupvit.losses import (
    GroupPhraseAlignmentLoss,
    assignment_product,
    group_phrase_targets,
    phrase_patch_shares,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import make_synthetic_data  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IMAGE_TRANSFORM = dict(image_size=64, scale=(0.5, 1.0), auto_augment=None, color_jitter=0.0, re_prob=0.0)


@pytest.fixture(scope="module")
def grounding_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ground")
    make_synthetic_data.main(["--out", str(out), "--num-train", "6", "--num-val", "0", "--train-grounding"])
    return out


def test_train_grounding_files_match_the_val_format(grounding_root: Path, tmp_path: Path) -> None:
    records = read_grounding_jsonl(grounding_root / "train" / "grounding.jsonl")
    captions = [json.loads(line) for line in (grounding_root / "train" / "captions.jsonl").open()]
    assert len(records) == 6 and [r.caption for r in records] == [c["caption"] for c in captions]
    for i, record in enumerate(records):
        assert record.image == grounding_root / "train" / "images" / f"{i:09d}.jpg"
        assert record.label_map == grounding_root / "train" / "ann_dir" / f"{i:09d}.png"
        label_map = np.asarray(Image.open(record.label_map))
        assert label_map.shape == (64, 64)
        for (start, end), label in record.phrases:  # every named phrase has pixels of its class
            assert 1 <= label <= 8 and (label_map == label).any() and 0 <= start < end <= len(record.caption)
    # without the flag the train split has no grounding files
    make_synthetic_data.main(["--out", str(tmp_path), "--num-train", "2", "--num-val", "0"])
    assert (
        not (tmp_path / "train" / "grounding.jsonl").exists()
        and not (tmp_path / "train" / "ann_dir").exists()
    )


def test_assignment_product_and_phrase_shares() -> None:
    a1 = torch.tensor([[[1.0, 0.0, 0.5, 0.0], [0.0, 1.0, 0.5, 1.0]]])  # 2 groups over 4 patches
    a2 = torch.tensor([[[0.25, 1.0]]])  # 1 group over the 2
    assert torch.allclose(assignment_product((a1, a2)), torch.tensor([[[0.25, 1.0, 0.625, 1.0]]]))
    # 4 x 4 label map on a 2 x 2 grid: phrase label 3 fills the top-left patch and half the top-right
    label_map = torch.zeros(1, 4, 4, dtype=torch.long)
    label_map[0, :2, :2] = 3
    label_map[0, :2, 2] = 3
    label_map[0, 2:, 2:] = 255  # an ignored patch: no share
    label_map[0, 3, 0] = 255  # a quarter ignored: the share is over the 3 valid pixels
    label_map[0, 2, 0] = 3
    shares = phrase_patch_shares(label_map, torch.tensor([[3, -1]]), (2, 2))
    assert torch.allclose(shares, torch.tensor([[[1.0, 0.5, 1 / 3, 0.0], [0.0, 0.0, 0.0, 0.0]]]))


def test_group_phrase_targets_need_most_of_a_group_inside() -> None:
    # group 0 holds patches 0, 1 fully and patch 2 half; group 1 the rest
    a = torch.tensor([[[1.0, 1.0, 0.5, 0.0], [0.0, 0.0, 0.5, 1.0]]])
    label_map = torch.zeros(1, 2, 2, dtype=torch.long)
    label_map[0, 0, 0] = 5  # phrase 5 covers patch 0: 1 of group 0's 2.5 patches (40 %)
    label_map[0, 0, 1] = 5  # and patch 1: 2 of 2.5 (80 %)
    targets = group_phrase_targets((a,), label_map, torch.tensor([[5, 7]]), (2, 2))
    assert targets.tolist() == [[[1.0, 0.0], [0.0, 0.0]]]
    label_map[0, 1, 1] = 7  # phrase 7: patch 3, 1 of group 1's 1.5 patches (67 %)
    targets = group_phrase_targets((a,), label_map, torch.tensor([[5, 7]]), (2, 2), min_share=0.7)
    assert targets.tolist() == [[[1.0, 0.0], [0.0, 0.0]]]
    targets = group_phrase_targets((a,), label_map, torch.tensor([[5, 7]]), (2, 2))
    assert targets.tolist() == [[[1.0, 0.0], [0.0, 1.0]]]


def test_alignment_loss_against_the_formula() -> None:
    groups = F.normalize(torch.tensor([[[1.0, 0.0], [0.6, 0.8]]]), dim=-1)  # [1, 2, 2]
    phrases = F.normalize(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]), dim=-1)  # [1, 2, 2]
    targets = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    cos = [[1.0, 0.0], [0.6, 0.8]]
    logits = [[10 * (c - 0.4) for c in row] for row in cos]
    bce = [
        [
            -math.log(torch.sigmoid(torch.tensor(z)).item())
            if t
            else -math.log(1 - torch.sigmoid(torch.tensor(z)).item())
        ]
        for row, trow in zip(logits, targets[0].tolist())
        for z, t in zip(row, trow)
    ]
    expected = sum(v[0] for v in bce) / 4
    loss = GroupPhraseAlignmentLoss("bce", scale=10.0, threshold=0.4)(
        groups, phrases, targets, torch.tensor([[True, True]])
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # a padding phrase is left out: only the first column counts
    only_first = GroupPhraseAlignmentLoss()(groups, phrases, targets, torch.tensor([[True, False]]))
    assert only_first.item() == pytest.approx((bce[0][0] + bce[2][0]) / 2, rel=1e-5)
    # focal: alpha_t (1 - p_t)^2 bce, summed over the pairs, divided by the 2 positives
    p = torch.sigmoid(torch.tensor(logits))
    p_t = torch.where(targets[0] > 0, p, 1 - p)
    alpha_t = torch.where(targets[0] > 0, 0.25, 0.75)
    focal = (
        alpha_t * (1 - p_t) ** 2 * torch.tensor([[v[0] for v in bce[:2]], [v[0] for v in bce[2:]]])
    ).sum() / 2
    loss = GroupPhraseAlignmentLoss("focal")(groups, phrases, targets, torch.tensor([[True, True]]))
    assert loss.item() == pytest.approx(focal.item(), rel=1e-5)
    no_phrase = GroupPhraseAlignmentLoss()(groups, phrases, targets, torch.tensor([[False, False]]))
    assert no_phrase.item() == 0.0
    with pytest.raises(ValueError, match="kind must be 'bce' or 'focal', got 'l2'"):
        GroupPhraseAlignmentLoss("l2")


@pytest.mark.nltk_data
def test_grounding_dataset_and_collate(grounding_root: Path) -> None:
    from mmseg_plugins.train_data import GroundingFolderDataset, image_text_collate

    dataset = GroundingFolderDataset(
        str(grounding_root / "train"),
        image_transform=IMAGE_TRANSFORM,
        text_transform=dict(num_prompts=3, templates="simple"),
    )
    records = read_grounding_jsonl(grounding_root / "train" / "grounding.jsonl")
    torch.manual_seed(0)
    batch = image_text_collate([dataset[i] for i in range(6)])
    grounding = batch["data_samples"]["grounding"]
    most = max(len(r.phrases) for r in records)
    assert batch["inputs"].shape == (6, 3, 64, 64) and batch["data_samples"]["text"].shape == (6, 4, 77)
    assert grounding["label_map"].shape == (6, 64, 64) and grounding["phrase_text"].shape == (6, most, 77)
    for i, record in enumerate(records):
        labels = grounding["phrase_labels"][i].tolist()
        n = len(record.phrases)
        assert labels[n:] == [-1] * (most - n) and not grounding["phrase_text"][i, n:].any()
        for label, (_, gt) in zip(labels[:n], record.phrases):  # a phrase cropped out is no target
            assert label == (gt if (grounding["label_map"][i] == gt).any() else -1)
    # the phrase text is grounding's query in its template: "a photo of a toy car." for "a toy car"
    from groupvit import get_tokenizer
    from groupvit.data.grounding import phrase_queries

    first = records[0]
    queries = phrase_queries(first.caption, [span for span, _ in first.phrases])
    assert torch.equal(
        grounding["phrase_text"][0, : len(queries)], get_tokenizer()([f"a photo of a {q}." for q in queries])
    )


def test_grounding_dataset_refuses_photometric_augmentation(grounding_root: Path) -> None:
    from groupvit.errors import InputError
    from mmseg_plugins.train_data import GroundingFolderDataset

    with pytest.raises(InputError, match=r"applies no photometric augmentation, got \{'color_jitter': 0.4\}"):
        GroundingFolderDataset(
            str(grounding_root / "train"), image_transform=dict(image_size=64, color_jitter=0.4)
        )


@pytest.mark.slow
@pytest.mark.nltk_data
@pytest.mark.parametrize("fusion_layers", [0, 2])
def test_train_model_adds_the_grounding_loss(grounding_root: Path, fusion_layers: int) -> None:
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmseg_plugins  # noqa: F401
    from mmseg_plugins.train_data import GroundingFolderDataset, image_text_collate

    init_default_scope("mmseg")
    dataset = GroundingFolderDataset(
        str(grounding_root / "train"), image_transform=IMAGE_TRANSFORM, text_transform=dict(num_prompts=3)
    )
    batch = image_text_collate([dataset[i] for i in range(4)])
    cfg = dict(
        type="GroupViTTrainModel",
        model_name="groupvit_tiny_synthetic",
        model_overrides={"fusion.layers": fusion_layers},
        checkpoint=str(REPO / "checkpoints" / "groupvit_tiny_synthetic.pth"),
        group_multi_label=True,
        data_preprocessor=dict(type="GroupViTDataPreProcessor", mean=[0, 0, 0], std=[1, 1, 1]),
    )
    torch.manual_seed(0)
    plain = MODELS.build(cfg).train()(batch["inputs"], batch["data_samples"], mode="loss")
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg, grounding_weight=2.0)).train()
    losses = model(batch["inputs"], batch["data_samples"], mode="loss")
    assert "loss_grounding" not in plain and 0.0 < losses["loss_grounding"].item() < 20.0
    # the stage-1 losses are computed as without grounding (fusion off for them)
    assert losses["loss_itc"].item() == pytest.approx(plain["loss_itc"].item(), abs=1e-6)
    losses["loss_grounding"].backward()
    alphas = [p.grad for n, p in model.named_parameters() if n.endswith("fusion.alpha")]
    assert len(alphas) == fusion_layers and all(g is not None and g.abs().item() > 0 for g in alphas)


def _grounding_train_cfg(fusion_layers: int, **kwargs) -> dict:
    return dict(
        type="GroupViTTrainModel",
        model_name="groupvit_tiny_synthetic",
        model_overrides={"fusion.layers": fusion_layers},
        checkpoint=str(REPO / "checkpoints" / "groupvit_tiny_synthetic.pth"),
        group_multi_label=True,
        data_preprocessor=dict(type="GroupViTDataPreProcessor", mean=[0, 0, 0], std=[1, 1, 1]),
        **kwargs,
    )


@pytest.mark.slow
@pytest.mark.nltk_data
def test_train_fusion_only_leaves_every_other_tensor_as_loaded(grounding_root: Path) -> None:
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmseg_plugins  # noqa: F401
    from mmseg_plugins.train_data import GroundingFolderDataset, image_text_collate

    init_default_scope("mmseg")
    dataset = GroundingFolderDataset(
        str(grounding_root / "train"), image_transform=IMAGE_TRANSFORM, text_transform=dict(num_prompts=3)
    )
    batch = image_text_collate([dataset[i] for i in range(6)])
    model = MODELS.build(_grounding_train_cfg(2, grounding_weight=1.0, train_fusion_only=True)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # the stage-2 optimizer (AdamW with weight decay, 10x on the fusion keys) over the whole model
    optim = build_optim_wrapper(
        model,
        dict(
            optimizer=dict(type="AdamW", lr=1e-2, weight_decay=0.05),
            paramwise_cfg=dict(custom_keys={".fusion.": dict(lr_mult=10.0)}),
        ),
    )
    for _ in range(3):
        losses = model(batch["inputs"], batch["data_samples"], mode="loss")
        assert set(losses) == {"loss_grounding"}  # the frozen stage-1 losses are not computed
        optim.update_params(losses["loss_grounding"])
    after = model.state_dict()
    fusion = {k for k in after if ".fusion." in k}
    assert len(fusion) == 26  # 2 blocks x 13 tensors: norms, q/k/v/out projections, alpha
    # every tensor of the dual encoder, BatchNorm statistics included, is bit for bit the loaded one
    assert all(torch.equal(after[k], before[k]) for k in after if k not in fusion)
    assert all(not torch.equal(after[k], before[k]) for k in fusion if k.endswith("alpha"))
    assert model.model.image_projector.training is False and model.model.vision.training is False
    assert all(m.training for m in model.modules() if type(m).__name__ == "GatedCrossAttention")


def test_train_fusion_only_needs_fusion_layers_and_the_fused_grounding_loss() -> None:
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmseg_plugins  # noqa: F401
    from groupvit.errors import InputError

    init_default_scope("mmseg")
    with pytest.raises(InputError, match=r"needs fusion layers: set model.model_overrides.fusion.layers > 0"):
        MODELS.build(_grounding_train_cfg(0, grounding_weight=1.0, train_fusion_only=True))
    with pytest.raises(
        InputError, match=r"needs grounding_weight > 0 and grounding_fusion=True, got 0.0 and True"
    ):
        MODELS.build(_grounding_train_cfg(2, train_fusion_only=True))


def test_patch_alignment_scores_every_patch_by_its_groups() -> None:
    from groupvit.losses import PatchPhraseAlignmentLoss

    # one phrase over patches 0, 1 of 4; group 0 is the phrase (cos 1), group 1 is not (cos 0)
    groups_embeds = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    phrase = torch.tensor([[[1.0, 0.0]]])
    shares = torch.tensor([[[1.0, 0.6, 0.4, 0.0]]])  # patch 2 is only 40 % inside: a negative
    split = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]])
    merged = torch.tensor([[[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]])
    valid = torch.tensor([[True]])
    loss = PatchPhraseAlignmentLoss()
    sp = (
        F.softplus
    )  # bce(logit, 1) = softplus(-logit), bce(logit, 0) = softplus(logit); logits 10 * (cos - 0.4)
    assert loss(groups_embeds, phrase, split, shares, valid).item() == pytest.approx(
        (2 * sp(torch.tensor(-6.0)) + 2 * sp(torch.tensor(-4.0))).item() / 4, rel=1e-5
    )
    # merging the phrase with the background costs the background patches: no gain from collapse
    assert loss(groups_embeds, phrase, merged, shares, valid).item() == pytest.approx(
        (2 * sp(torch.tensor(-6.0)) + 2 * sp(torch.tensor(6.0))).item() / 4, rel=1e-5
    )
    half = 0.5 * split + 0.5 * merged  # soft assignments mix the groups' logits
    expected = torch.tensor([6.0, 6.0, 1.0, 1.0])
    targets = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert loss(groups_embeds, phrase, half, shares, valid).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(expected, targets).item(), rel=1e-5
    )
    assert loss(groups_embeds, phrase, split, shares, torch.tensor([[False]])).item() == 0.0


def test_grounding_targets_must_be_group_or_patch() -> None:
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmseg_plugins  # noqa: F401
    from groupvit.errors import InputError

    init_default_scope("mmseg")
    with pytest.raises(InputError, match=r"^grounding_targets must be 'group' or 'patch', got 'pixel'$"):
        MODELS.build(dict(_grounding_train_cfg(0), grounding_targets="pixel"))
