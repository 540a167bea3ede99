"""GroupViTTrainModel: loss wiring, optimiser groups, collate / skipped samples, and a short training
run in which both losses fall well below their chance levels."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from train_helpers import TINY_CONFIG, write_caption_folder, write_small_config

import mmseg_plugins  # noqa: F401  (compat first, registers the training modules)
from groupvit.errors import InputError
from groupvit.losses import ContrastiveLoss, MultiLabelContrastiveLoss, text_ids
from mmseg_plugins.train_data import image_text_collate

B, K = 6, 3


pytestmark = pytest.mark.usefixtures("one_thread")


# the paper's losses; each test switches on the options it checks
PAPER_LOSSES = dict(
    duplicate_positives=False,
    group_multi_label=False,
    noun_group_weight=0.0,
    exclusive_group_weight=0.0,
    unclaimed_group_weight=0.0,
    group_balance_weight=0.0,
)


def _build(**model_cfg) -> torch.nn.Module:
    init_default_scope("mmseg")
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.model.update(model_name="groupvit_tiny", **{**PAPER_LOSSES, **model_cfg})
    return MODELS.build(cfg.model)


def _losses(extra_losses: set[str], **model_cfg) -> tuple[torch.nn.Module, dict, dict]:
    """Model with ``model_cfg``, its preprocessed batch and the losses of one forward with Gumbel
    seed 1; checks that the loss dict holds the paper keys plus ``extra_losses``."""
    model = _build(**model_cfg)
    data = model.data_preprocessor(_batch(), True)
    torch.manual_seed(1)
    losses = model(**data, mode="loss")
    paper = {"loss_itc", "loss_multi_label", "logit_scale", "multi_label_logit_scale"}
    assert set(losses) == paper | extra_losses
    return model, data, losses


def _batch(seed: int = 0) -> dict:
    """Collated image-text batch: captions of different lengths, padding ids 0 up to 77."""
    g = torch.Generator().manual_seed(seed)
    text = torch.zeros(B, 1 + K, 77, dtype=torch.long)
    for b in range(B):
        for r in range(1 + K):
            n = 4 + (3 * b + r) % 9
            text[b, r, :n] = torch.randint(1, 49000, (n,), generator=g)
            text[b, r, n] = 49407  # end token: the largest id, pooled by argmax
    text[1] = text[0]  # a duplicate sample: its texts are positives of both with duplicate_positives
    text[1] = text[0]  # a duplicate pair: equal texts are positives with duplicate_positives
    samples = [dict(image=torch.randn(3, 64, 64, generator=g), text=text[b], skipped=b % 2) for b in range(B)]
    return image_text_collate(samples)


def test_collate_stacks_and_sums_skipped() -> None:
    batch = _batch()
    assert batch["inputs"].shape == (B, 3, 64, 64)
    assert batch["data_samples"]["text"].shape == (B, 1 + K, 77)
    assert int(batch["data_samples"]["skipped"]) == 3


@pytest.mark.parametrize("duplicate_positives", [False, True])
def test_loss_matches_groupvit_losses(duplicate_positives: bool) -> None:
    model, data, losses = _losses(set(), duplicate_positives=duplicate_positives)

    # reference: caption -> ITC, prompts -> multi-label, ids of identical texts when asked
    net = model.model
    text = data["data_samples"]["text"]
    torch.manual_seed(1)
    image = net.encode_image(data["inputs"], normalize=True)
    texts = net.encode_text(text.flatten(0, 1), normalize=True).view(B, 1 + K, -1)
    ids = text_ids(text) if duplicate_positives else torch.zeros(B, 1 + K, dtype=torch.long)
    itc = ContrastiveLoss()(
        image, texts[:, 0], net.logit_scale_value(), ids[:, 0] if duplicate_positives else None
    )
    ml = MultiLabelContrastiveLoss()(
        image, texts[:, 1:], net.multi_label_logit_scale_value(), ids[:, 1:] if duplicate_positives else None
    )
    torch.testing.assert_close(losses["loss_itc"], itc, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(losses["loss_multi_label"], ml, rtol=1e-5, atol=1e-5)
    assert float(losses["logit_scale"]) == pytest.approx(1 / 0.07, rel=1e-4)

    (losses["loss_itc"] + losses["loss_multi_label"]).backward()
    assert net.logit_scale.grad is not None and net.multi_label_logit_scale.grad is not None


def test_group_balance_loss_is_added_when_enabled() -> None:
    from groupvit.losses import GroupBalanceLoss

    model, data, losses = _losses({"loss_group_balance"}, group_balance_weight=0.5)
    torch.manual_seed(1)  # the same Gumbel noise: the soft assignments of the same forward
    grouping = model.model.encode_image_with_assignments(data["inputs"], normalize=True)
    expected = 0.5 * GroupBalanceLoss()(grouping.assignments)
    torch.testing.assert_close(losses["loss_group_balance"], expected, rtol=1e-5, atol=1e-5)
    losses["loss_group_balance"].backward()
    assert model.model.vision.stages[0].group_token.grad.abs().sum() > 0


def test_affinity_group_loss_is_added_when_enabled() -> None:
    from groupvit.losses import AffinityGroupLoss

    model, data, losses = _losses({"loss_affinity_group"}, affinity_group_weight=0.5, affinity_iterations=3)
    torch.manual_seed(1)  # the same Gumbel noise: the soft assignments of the same forward
    grouping = model.model.encode_image_with_assignments(data["inputs"], normalize=True)
    expected = 0.5 * AffinityGroupLoss(3)(data["inputs"], grouping.assignments)
    assert expected.item() > 0
    torch.testing.assert_close(losses["loss_affinity_group"], expected, rtol=1e-5, atol=1e-6)
    losses["loss_affinity_group"].backward()
    assert model.model.vision.stages[0].group_token.grad.abs().sum() > 0


@pytest.mark.parametrize("usage", ["soft", "hard"])
def test_usage_floor_loss_is_added_when_enabled(usage: str) -> None:
    from groupvit.losses import GroupUsageFloorLoss

    model, data, losses = _losses(
        {"loss_usage_floor"}, usage_floor_weight=0.5, usage_floor_groups=40.0, usage_floor_target=usage
    )
    torch.manual_seed(1)  # the same Gumbel noise: the soft assignments of the same forward
    grouping = model.model.encode_image_with_assignments(data["inputs"], normalize=True)
    expected = 0.5 * GroupUsageFloorLoss(40.0, usage)(grouping.assignments)
    assert expected.item() > 0  # the tiny model has fewer than 40 groups: always under the floor
    torch.testing.assert_close(losses["loss_usage_floor"], expected, rtol=1e-5, atol=1e-6)


def test_affinity_group_loss_counts_from_its_start_iteration() -> None:
    from mmseg_plugins.hooks import TrainIterationHook

    model = _build(affinity_group_weight=0.5, affinity_iterations=3, affinity_start_iter=2)
    data = model.data_preprocessor(_batch(), True)
    seen = {}
    for it in range(4):
        TrainIterationHook().before_train_iter(SimpleNamespace(model=model, iter=it), it)
        assert model.iteration == it
        seen[it] = "loss_affinity_group" in model(**data, mode="loss")
    assert seen == {0: False, 1: False, 2: True, 3: True}
    with pytest.raises(InputError, match="affinity_start_iter must be >= 0"):
        _build(affinity_start_iter=-1)


def test_affinity_group_weight_follows_its_schedule() -> None:
    from groupvit.losses import AffinityGroupLoss
    from mmseg_plugins.hooks import TrainIterationHook

    model = _build(affinity_group_weight=[[0, 0.0], [4, 2.0]], affinity_iterations=3)
    data = model.data_preprocessor(_batch(), True)
    seen = {}
    for it in (0, 1, 3, 6):
        TrainIterationHook().before_train_iter(SimpleNamespace(model=model, iter=it), it)
        torch.manual_seed(1)
        losses = model(**data, mode="loss")
        if it == 0:
            assert "loss_affinity_group" not in losses  # weight 0: not computed
            continue
        torch.manual_seed(1)  # the same Gumbel noise: the soft assignments of the same forward
        grouping = model.model.encode_image_with_assignments(data["inputs"], normalize=True)
        unit = AffinityGroupLoss(3)(data["inputs"], grouping.assignments)
        seen[it] = (losses["loss_affinity_group"] / unit).item()
    assert seen == pytest.approx({1: 0.5, 3: 1.5, 6: 2.0}, rel=1e-5)
    with pytest.raises(InputError, match="affinity_group_weight: the iterations must increase"):
        _build(affinity_group_weight=[[5, 1.0], [2, 0.0]])


def test_group_losses_when_enabled() -> None:
    from groupvit.losses import ExclusiveGroupLoss, NounGroupLoss, UnclaimedGroupLoss

    model, data, losses = _losses(
        {"loss_noun_group", "loss_exclusive_group", "loss_unclaimed_group"},
        duplicate_positives=True,
        group_multi_label=True,
        noun_group_weight=0.5,
        exclusive_group_weight=3.0,
        unclaimed_group_weight=2.0,
    )
    # reference from the model's own groups (the same Gumbel noise, BatchNorm in the same order)
    net = model.model
    text = data["data_samples"]["text"]
    torch.manual_seed(1)
    grouping = net.encode_image_with_assignments(data["inputs"], normalize=True, groups=True)
    groups = grouping.group_embeds
    assert groups.shape == (B, 4, 32)  # groupvit_tiny: 4 final groups, embed_dim 32
    texts = net.encode_text(text.flatten(0, 1), normalize=True).view(B, 1 + K, -1)
    ids = text_ids(text)
    ml_scale = net.multi_label_logit_scale_value()
    itc = ContrastiveLoss()(grouping.image_embeds, texts[:, 0], net.logit_scale_value(), ids[:, 0])
    ml = MultiLabelContrastiveLoss()(groups, texts[:, 1:], ml_scale, ids[:, 1:])
    noun_group = 0.5 * NounGroupLoss()(groups, texts[:, 1:], ml_scale)
    torch.testing.assert_close(losses["loss_itc"], itc, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(losses["loss_multi_label"], ml, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(losses["loss_noun_group"], noun_group, rtol=1e-5, atol=1e-5)
    unclaimed = 2.0 * UnclaimedGroupLoss()(groups, texts[:, 1:], ids[:, 1:], ml_scale)
    torch.testing.assert_close(losses["loss_unclaimed_group"], unclaimed, rtol=1e-5, atol=1e-5)
    assert float(losses["loss_unclaimed_group"]) > 0
    # prompts equal to the caption (its padding) take no part in the exclusive loss
    exclusive = 3.0 * ExclusiveGroupLoss()(groups, texts[:, 1:], ids[:, 1:], ids[:, 0], ml_scale)
    torch.testing.assert_close(losses["loss_exclusive_group"], exclusive, rtol=1e-5, atol=1e-5)
    assert 0.0 < float(losses["loss_exclusive_group"]) <= 3.0 * math.log(K) + 1e-4  # at most chance, ln K
    assert 0.0 < float(losses["loss_noun_group"]) <= 0.5 * math.log(4) + 1e-4  # at most chance, ln G
    losses["loss_noun_group"].backward()
    assert net.vision.stages[0].group_token.grad.abs().sum() > 0


def test_logit_scale_is_clamped_at_100() -> None:
    model = _build()
    with torch.no_grad():
        model.model.logit_scale.fill_(math.log(1000.0))
    data = model.data_preprocessor(_batch(), True)
    assert float(model(**data, mode="loss")["logit_scale"]) == pytest.approx(100.0)


def test_tensor_mode_gives_normalised_embeddings() -> None:
    model = _build()
    data = model.data_preprocessor(_batch(), True)
    image, text = model(**data, mode="tensor")
    assert image.shape == text.shape == (B, 32)
    torch.testing.assert_close(image.norm(dim=-1), torch.ones(B))


def test_predict_mode_segments_for_iou_metric() -> None:
    model = _build(class_names=("background", "apple", "car"), test_cfg=None).eval()
    samples = [SegDataSample(metainfo=dict(img_shape=(64, 48), ori_shape=(80, 60))) for _ in range(2)]
    data = dict(
        inputs=[torch.randint(0, 255, (3, 64, 48), dtype=torch.uint8) for _ in range(2)], data_samples=samples
    )
    out = model.val_step(data)
    assert out[0].pred_sem_seg.data.shape == (1, 80, 60)
    assert out[0].seg_logits.data.shape == (3, 80, 60)


def test_no_weight_decay_groups() -> None:
    model = _build()
    cfg = Config.fromfile(TINY_CONFIG)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): g["weight_decay"] for g in optim.optimizer.param_groups for p in g["params"]}
    names = {n: p for n, p in model.named_parameters()}
    exempt = {f"model.{n}" for n in model.model.no_weight_decay()}
    assert exempt <= set(names)
    for name, p in names.items():
        is_norm_or_bias = p.ndim == 1  # LayerNorm / BatchNorm weights and every bias
        expected = 0.0 if (name in exempt or is_norm_or_bias) else cfg.weight_decay
        assert decay[id(p)] == expected, name


def test_short_training_run_beats_chance(tmp_path) -> None:
    """A run on 16 memorisable scenes (one corrupt file among them): both losses end far below chance."""
    batch = 16
    data_root = write_caption_folder(tmp_path / "data", num=batch, corrupt=1)
    cfg = Config.fromfile(write_small_config(tmp_path / "cfg.py", data_root, batch_size=batch, max_iters=300))
    cfg.work_dir = str(tmp_path / "work")
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    itc = hub.get_scalar("train/loss_itc").mean(10)
    ml = hub.get_scalar("train/loss_multi_label").mean(10)
    chance_itc = math.log(batch)  # 2.77
    chance_ml = 0.5 * (math.log(batch * 3) + math.log(batch))  # image side ln(B K), prompt side ln(B): 3.32
    print(f"loss_itc {itc:.3f} (chance {chance_itc:.3f}), loss_multi_label {ml:.3f} (chance {chance_ml:.3f})")
    assert itc < 0.3 * chance_itc
    # the prompt side cannot reach 0: scenes share nouns ("a photo of a car" fits several images)
    assert ml < 0.6 * chance_ml
    # the corrupt file was skipped, counted and logged (index 16 wraps to 0 -> one skip per visit)
    assert hub.get_info("groupvit_skipped_samples") > 0
    log = next((tmp_path / "work").glob("*/*.log")).read_text()
    assert "corrupt image-text samples" in log
