"""Prompt tuning: group targets, the differentiable protocol rows, the frozen model, the prompt file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import groupvit
from groupvit.errors import InputError
from groupvit.models.groupvit import SegmentationFeatures
from groupvit.prompt_tuning import PromptLearner, group_log_probs, group_targets, prompt_tuning_loss
from groupvit.prompts import PromptSet, load_prompts, model_fingerprint, save_prompts
from groupvit.zero_shot import ZeroShotSegmenter
from groupvit.zero_shot_functional import build_class_embeddings, group_scores

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "groupvit_tiny_synthetic.pth"
CONFIG = ROOT / "configs" / "groupvit" / "groupvit_tiny_synthetic_prompt.py"
NAMES = ["apple", "house", "star", "tree", "fish", "car", "ball", "flower"]
needs_shipped = pytest.mark.skipif(not SHIPPED.is_file(), reason=f"{SHIPPED} not present")


def test_group_targets_are_majority_labels_with_pixel_counts() -> None:
    group_ids = torch.tensor([[[0, 0, 1], [1, 1, 2]]])  # [1, 2, 3]
    labels = torch.tensor([[[3, 3, 0], [2, 2, 255]]])  # group 2 only has an ignored pixel
    targets, weights = group_targets(group_ids, labels, num_groups=4, num_labels=4)
    assert targets.tolist() == [[3, 2, 0, 0]]
    assert weights.tolist() == [[2.0, 3.0, 0.0, 0.0]]
    with pytest.raises(InputError, match=r"label value 7 outside 0\.\.3 \(and 255 = ignore\)"):
        group_targets(group_ids, torch.full_like(labels, 7), 4, 4)


def test_log_probs_take_the_protocol_decision_and_the_loss_is_weighted() -> None:
    torch.manual_seed(0)
    groups, image, classes = (
        torch.randn(3, 6, 16),
        torch.randn(3, 16),
        F.normalize(torch.randn(5, 16), dim=-1),
    )
    log_probs = group_log_probs(
        F.normalize(groups, dim=-1), F.normalize(image, dim=-1), classes, 20.0, 0.5, 3
    )
    features = SegmentationFeatures((torch.ones(3, 6, 4).softmax(1),), groups, image, (2, 2))
    rows = group_scores(features, classes, 20.0, background=True, bg_thresh=0.5, top_k=3)
    assert torch.equal(log_probs.argmax(-1), rows.argmax(-1))  # background channel 0 included
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, 6))
    targets, weights = torch.zeros(3, 6, dtype=torch.long), torch.zeros(3, 6)
    weights[0, 0] = 2.0
    expected = -log_probs[0, 0, 0]
    assert torch.allclose(prompt_tuning_loss(log_probs, targets, weights), expected)


@pytest.fixture(scope="module")
def shipped() -> torch.nn.Module:
    if not SHIPPED.is_file():
        pytest.skip(f"{SHIPPED} not present")
    return (
        groupvit.create_model("groupvit_tiny_synthetic", checkpoint=str(SHIPPED)).eval().requires_grad_(False)
    )


@pytest.mark.parametrize("kind, shared", [("embedding", True), ("context", True), ("context", False)])
def test_prompts_start_as_the_zero_shot_embeddings(shipped, kind: str, shared: bool) -> None:
    tokenizer = groupvit.get_tokenizer()
    learner = PromptLearner(shipped, tokenizer, NAMES, kind=kind, shared_context=shared)
    zero_shot = build_class_embeddings(shipped, tokenizer, NAMES, ["a photo of a {}."])
    assert torch.allclose(learner(shipped), zero_shot, atol=1e-6)
    shapes = [tuple(p.shape) for p in learner.parameters()]
    assert shapes == {"embedding": [(8, 64)], "context": [(4, 48) if shared else (8, 4, 48)]}[kind]
    learner(shipped).sum().backward()
    assert all(p.grad is None for p in shipped.parameters())


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("labelled")
    subprocess.run(
        [sys.executable, str(ROOT / "tools/make_synthetic_data.py"), "--out", str(out), "--num-train", "0",
         "--num-val", "12", "--seed", "3"],
        check=True, capture_output=True,
    )  # fmt: skip
    return out / "val"


def _run_prompt_tuning(labelled: Path, work_dir: Path, **options) -> object:
    from mmengine.config import Config
    from mmseg.registry import RUNNERS

    import mmseg_plugins  # noqa: F401

    cfg = Config.fromfile(str(CONFIG))
    cfg.merge_from_dict(
        {"train_dataloader.dataset.data_root": str(labelled), "train_dataloader.dataset.k": 1,
         "train_dataloader.batch_size": 4, "train_cfg.max_iters": 6, "train_cfg.val_interval": 6,
         "val_dataloader.dataset.data_root": str(labelled), "model.checkpoint": str(SHIPPED), **options}
    )  # fmt: skip
    cfg.work_dir = str(work_dir)
    cfg.log_level = "WARNING"
    runner = RUNNERS.build(cfg)
    runner.train()
    return runner


@needs_shipped
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["embedding", "context"])
def test_training_changes_the_prompts_only_and_writes_the_file(
    shipped, labelled, tmp_path, kind: str
) -> None:
    before = {k: v.clone() for k, v in shipped.state_dict().items()}
    runner = _run_prompt_tuning(labelled, tmp_path, **{"model.prompt_kind": kind})
    model = runner.model
    after = model.model.state_dict()
    assert after.keys() == before.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == []  # every weight and BatchNorm statistic bit for bit
    assert not any(p.requires_grad for p in model.model.parameters())
    assert len(runner.train_dataloader.dataset) <= 8  # k = 1 image for each of 8 classes
    path = tmp_path / "prompts.safetensors"
    assert path.stat().st_size < 10_000
    prompts = load_prompts(path)
    assert prompts.class_names == tuple(NAMES) and prompts.kind == kind
    assert prompts.model_fingerprint == model_fingerprint(shipped)
    zero_shot = build_class_embeddings(shipped, groupvit.get_tokenizer(), NAMES, ["a photo of a {}."])
    assert not torch.allclose(prompts.class_embeddings, zero_shot, atol=1e-4)  # the prompts learned
    assert torch.allclose(prompts.class_embeddings, model.learner(model.model).detach(), atol=1e-6)
    # the file is what the segmenter uses; a PromptSet object works alike
    segmenter = ZeroShotSegmenter(shipped, NAMES, prompts=path)
    assert torch.equal(segmenter.class_embeddings, prompts.class_embeddings)
    assert torch.equal(
        ZeroShotSegmenter(shipped, NAMES, prompts=prompts).class_embeddings, prompts.class_embeddings
    )


@needs_shipped
def test_prompt_file_round_trip_and_wrong_model_or_classes(shipped, tmp_path) -> None:
    embeds = F.normalize(torch.randn(8, 64), dim=-1)
    prompts = PromptSet(tuple(NAMES), embeds, "embedding", model_fingerprint(shipped), "groupvit_tiny_synthetic",
                        {"embedding": embeds}, {"k": 4})  # fmt: skip
    path = save_prompts(prompts, tmp_path / "p.safetensors")
    loaded = load_prompts(path)
    assert loaded.class_names == prompts.class_names and torch.equal(loaded.class_embeddings, embeds)
    assert torch.equal(loaded.tensors["embedding"], embeds) and loaded.info == {"k": 4}
    with pytest.raises(InputError, match=r"p\.safetensors exists; remove it or choose another name"):
        save_prompts(prompts, path)
    with pytest.raises(InputError, match=r"were tuned for classes \['apple'.*, not \['apple', 'house'\]"):
        ZeroShotSegmenter(shipped, NAMES[:2], prompts=path)
    with pytest.raises(InputError, match=r"tuned for classes .*not \['house', 'apple'"):
        ZeroShotSegmenter(shipped, [NAMES[1], NAMES[0], *NAMES[2:]], prompts=path)
    other = groupvit.create_model("groupvit_tiny_synthetic").eval()
    with pytest.raises(InputError, match=r"belong to model groupvit_tiny_synthetic with fingerprint [0-9a-f]{16}, not "
                       r"to this one \([0-9a-f]{16}\): load the checkpoint they were tuned on"):  # fmt: skip
        ZeroShotSegmenter(other, NAMES, prompts=path)
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(InputError, match="bad.safetensors is not a .safetensors file"):
        load_prompts(tmp_path / "bad.safetensors")
    with pytest.raises(InputError, match="prompt file not found"):
        load_prompts(tmp_path / "missing.safetensors")


def test_few_shot_draw_is_seeded_and_covers_every_class() -> None:
    from mmseg_plugins.prompt_tuning import choose_few_shot

    present = [{0, 1}, {0, 2}, {0, 1, 2}, {0, 2}, {0, 1}, {0}]
    first = choose_few_shot(present, 3, k=2, seed=0)
    assert first == choose_few_shot(present, 3, k=2, seed=0)
    for label in (1, 2):
        assert sum(label in present[i] for i in first) >= 2
    assert choose_few_shot(present, 3, k=None, seed=0) == list(range(6))
    assert len(set(first)) == len(first)


@needs_shipped
def test_mmseg_segmentor_and_demo_take_the_prompt_file(shipped, tmp_path) -> None:

    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmseg_plugins  # noqa: F401

    embeds = F.normalize(torch.randn(8, 64), dim=-1)
    path = save_prompts(
        PromptSet(tuple(NAMES), embeds, "embedding", model_fingerprint(shipped)), tmp_path / "p.safetensors"
    )
    init_default_scope("mmseg")
    segmentor = MODELS.build(
        dict(type="GroupViTSegmentor", model_name="groupvit_tiny_synthetic", checkpoint=str(SHIPPED),
             class_names=("background", *NAMES), prompts=str(path))
    )  # fmt: skip
    assert torch.equal(segmentor.segmenter.class_embeddings, embeds)
    unfit = MODELS.build(
        dict(type="GroupViTSegmentor", model_name="groupvit_tiny_synthetic", class_names=("background", *NAMES),
             prompts=str(path))
    )  # fmt: skip
    with pytest.raises(InputError, match="not to this one"):  # random weights: not the prompts' model
        unfit.encode_decode(torch.zeros(1, 3, 64, 64))
    from groupvit.cli import demo

    args = demo.parse_args(
        [
            "x.png",
            "--vocab",
            ",".join(NAMES),
            "--checkpoint",
            str(SHIPPED),
            "--prompts",
            str(path),
            "--device",
            "cpu",
        ]
    )
    segmenter, _ = demo.build_segmenter(args)
    assert torch.equal(segmenter.class_embeddings, embeds)
    args = demo.parse_args(
        ["x.png", "--vocab", "apple,house", "--checkpoint", str(SHIPPED), "--prompts", str(path)]
    )
    with pytest.raises(InputError, match="were tuned for classes"):
        demo.build_segmenter(args)
