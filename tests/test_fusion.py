"""Deep fusion (config.fusion): FIBER's gated cross-attention, loading guarantees, the run-time switch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

import groupvit
from groupvit.checkpoint import load_checkpoint, ours_to_hf, ours_to_official
from groupvit.cli.models import fusion_overrides, load_model
from groupvit.config import FusionConfig
from groupvit.grounding import PhraseGrounder
from groupvit.layers.fusion import Context, FusedTransformerBlock, GatedCrossAttention
from groupvit.models.groupvit import GroupViT
from groupvit.preprocess import EvalTransform

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "checkpoints" / "groupvit_tiny_synthetic.pth"
FUSION = {"fusion.layers": 1, "fusion.text_layers": 1}


def _tokens(texts: list[str]) -> torch.Tensor:
    """Toy token ids [B, 16]: word lengths as ids, end-of-text (the largest id) after the last word."""
    out = torch.zeros(len(texts), 16, dtype=torch.long)
    for i, text in enumerate(texts):
        words = [1 + len(w) for w in text.split()]
        out[i, : len(words)] = torch.tensor(words)
        out[i, len(words)] = 999
    return out


def _outputs(model: GroupViT, images: torch.Tensor, text: torch.Tensor | None) -> list[torch.Tensor]:
    feats = model.forward_segmentation(images, text)
    grouping = model.encode_image_with_assignments(images, groups=True, text=text)
    return [
        *feats.assignments,
        feats.group_embeds,
        feats.image_embeds,
        model.encode_image(images, text=text),
        grouping.image_embeds,
        grouping.group_embeds,
        *grouping.assignments,
        model.encode_text(text if text is not None else _tokens(["a b"])),
    ]


def _tiny_pair() -> tuple[GroupViT, GroupViT]:
    torch.manual_seed(0)
    plain = groupvit.create_model("groupvit_tiny").eval()
    fused = groupvit.create_model("groupvit_tiny", **FUSION).eval()
    return plain, fused


def _fusion_keys(plain: GroupViT, fused: GroupViT) -> set[str]:
    return set(fused.state_dict()) - set(plain.state_dict())


def test_fusion_layers_sit_in_the_last_blocks_of_each_grouping_stage() -> None:
    model = groupvit.create_model("groupvit_s", **{"fusion.layers": 2, "fusion.text_layers": 3})
    fused = [[isinstance(b, FusedTransformerBlock) for b in stage.blocks] for stage in model.vision.stages]
    # GroupViT-S: 6 + 3 + 3 blocks, group tokens in stages 1 and 2 only
    assert fused == [[False] * 4 + [True] * 2, [False, True, True], [False] * 3]
    assert [isinstance(b, FusedTransformerBlock) for b in model.text.blocks] == [False] * 9 + [True] * 3
    block = model.vision.stages[0].blocks[5].fusion
    assert (block.k_proj.in_features, block.q_proj.in_features) == (256, 384)  # text width -> vision width
    assert all(m.fusion.alpha.item() == 0.0 for m in model.modules() if isinstance(m, FusedTransformerBlock))
    assert not groupvit.create_model("groupvit_s").has_fusion and model.has_fusion
    with pytest.raises(ValueError, match="fusion layers must be >= 0"):
        FusionConfig(layers=-1)


@pytest.mark.parametrize("layout", ["ours", "official", "hf"])
def test_released_layouts_load_with_only_the_fusion_keys_new(layout: str) -> None:
    plain, fused = _tiny_pair()
    sd = plain.state_dict()
    sd = {"ours": sd, "official": ours_to_official(sd), "hf": ours_to_hf(sd)}[layout]
    new = load_checkpoint(fused, sd)
    expected = _fusion_keys(plain, fused) | ({"multi_label_logit_scale"} if layout == "hf" else set())
    assert (
        set(new) == expected and len(new) == len(expected) and len(expected) == 39 + (layout == "hf")
    )  # 3 fused blocks x 13
    if layout == "hf":  # the model keeps its init there; copy it to compare the rest
        fused.multi_label_logit_scale.data.copy_(plain.multi_label_logit_scale.data)
    images = torch.randn(2, 3, 64, 64)
    text = _tokens(["a red ball", "two trees on grass"])
    for text_in in (None, text):  # alpha 0: with and without the caption, bit for bit
        for a, b in zip(
            _outputs(plain, images, None if text_in is None else text), _outputs(fused, images, text_in)
        ):
            assert torch.equal(a, b)
    image_tokens = fused.vision.forward_features(images).tokens
    assert torch.equal(plain.encode_text(text), fused.encode_text(text, image_tokens=image_tokens))


def test_a_checkpoint_missing_other_keys_still_fails() -> None:
    plain, fused = _tiny_pair()
    sd = plain.state_dict()
    del sd["vision.norm.weight"]
    with pytest.raises(RuntimeError, match=r"missing keys \(1\): vision.norm.weight"):
        load_checkpoint(fused, sd)


def _val_images(val: Path, n: int) -> torch.Tensor:
    transform = EvalTransform(320)
    return torch.stack([transform(Image.open(val / "img_dir" / "val" / f"{i:06d}.png")) for i in range(n)])


@pytest.mark.slow
def test_shipped_checkpoint_is_unchanged_by_fusion_layers_at_alpha_zero(synthetic_val: Path) -> None:
    plain = groupvit.create_model("groupvit_tiny_synthetic", checkpoint=str(SHIPPED)).eval()
    fused = groupvit.create_model(
        "groupvit_tiny_synthetic", checkpoint=str(SHIPPED), **{"fusion.layers": 2}
    ).eval()
    images = _val_images(synthetic_val, 2)
    text = groupvit.get_tokenizer()(["There are two trees on the fence.", "A drawing of a flower and a car."])
    with torch.no_grad():
        for a, b in zip(_outputs(plain, images, text), _outputs(fused, images, text)):
            assert torch.equal(a, b)


def _open_gates(model: GroupViT, value: float = 0.5) -> None:
    torch.manual_seed(1)
    for module in model.modules():
        if isinstance(module, GatedCrossAttention):
            module.alpha.data.fill_(value)


def test_the_switch_skips_cross_attention_and_the_gate_opens_it() -> None:
    plain, fused = _tiny_pair()
    load_checkpoint(fused, plain.state_dict())
    _open_gates(fused)
    calls = []
    for module in fused.modules():
        if isinstance(module, GatedCrossAttention):
            module.register_forward_hook(lambda *_: calls.append(1))
    images = torch.randn(2, 3, 64, 64)
    text = _tokens(["a red ball", "two trees on grass"])
    with torch.no_grad():
        off = fused.forward_segmentation(images)  # no text: the unfused model, no cross-attention run
        assert calls == [] and torch.equal(off.group_embeds, plain.forward_segmentation(images).group_embeds)
        on = fused.forward_segmentation(images, text)
        assert len(calls) == 2  # groupvit_tiny: its two grouping stages have one (fused) block each
        assert (on.group_embeds - off.group_embeds).abs().max() > 1e-3
        other = fused.forward_segmentation(images, _tokens(["a star", "a fish and a house"]))
        assert (other.group_embeds - on.group_embeds).abs().max() > 1e-3  # the groups depend on the caption


def test_padding_after_the_end_of_text_is_masked() -> None:
    plain, fused = _tiny_pair()
    load_checkpoint(fused, plain.state_dict())
    _open_gates(fused)
    images = torch.randn(1, 3, 64, 64)
    short = _tokens(["a ball"])
    alone = fused.forward_segmentation(images, short).group_embeds
    # the same caption in a batch with a long one: its context now has padding columns (masked)
    batch = fused.forward_segmentation(
        images.expand(2, -1, -1, -1), _tokens(["a ball", "a b c d e f g h i j"])
    )
    assert torch.allclose(alone[0], batch.group_embeds[0], atol=1e-5)
    context = fused.text_context(_tokens(["a ball", "a b c d e f g h i j"]))
    assert isinstance(context, Context) and context.tokens.shape[1] == 16
    assert context.mask[0].tolist() == [True] * 3 + [False] * 13 and context.mask[1].sum() == 11


def test_gradients_reach_the_gates_from_zero() -> None:
    torch.manual_seed(0)
    model = groupvit.create_model("groupvit_tiny", **FUSION).train()
    images = torch.randn(2, 3, 64, 64)
    text = _tokens(["a red ball", "two trees"])
    groups = model.encode_image_with_assignments(images, groups=True, text=text).group_embeds
    feats = model.vision.forward_features(images).tokens
    (groups.square().sum() + model.encode_text(text, image_tokens=feats).square().sum()).backward()
    gates = {n: p.grad for n, p in model.named_parameters() if n.endswith("fusion.alpha")}
    assert len(gates) == 3 and all(g is not None and g.abs() > 0 for g in gates.values())


def test_load_model_reads_the_fusion_layers_off_the_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = groupvit.create_model("groupvit_tiny_synthetic", **{"fusion.layers": 2})
    _open_gates(model, 0.25)
    sd = model.state_dict()
    assert fusion_overrides(sd) == {"fusion.layers": 2, "fusion.text_layers": 0}
    assert fusion_overrides(groupvit.create_model("groupvit_tiny").state_dict()) == {}
    path = tmp_path / "fused.pth"
    torch.save({"state_dict": {f"model.{k}": v for k, v in sd.items()}}, path)  # an mmengine checkpoint
    loaded = load_model(path)
    assert loaded.config.fusion.layers == 2 and loaded.vision.stages[0].blocks[4].fusion.alpha.item() == 0.25
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in sd.items())


@pytest.mark.slow
@pytest.mark.nltk_data
def test_phrase_grounder_conditions_the_groups_on_the_caption(synthetic_val: Path) -> None:
    plain = groupvit.create_model("groupvit_tiny_synthetic", checkpoint=str(SHIPPED)).eval()
    fused = groupvit.create_model(
        "groupvit_tiny_synthetic", checkpoint=str(SHIPPED), **{"fusion.layers": 2}
    ).eval()
    image = _val_images(synthetic_val, 2)[1]
    caption = "A drawing of a flower, a car and a golden star in front of a blanket."
    reference = PhraseGrounder(plain).ground(image, caption)
    at_zero = PhraseGrounder(fused).ground(image, caption)  # alpha 0: the same masks
    assert torch.equal(reference.labels, at_zero.labels)
    _open_gates(fused, 2.0)
    seen = []
    forward = fused.forward_segmentation
    fused.forward_segmentation = lambda images, text=None: seen.append(text) or forward(images, text)
    grounder = PhraseGrounder(fused)
    opened = grounder.ground(image, caption)
    assert torch.equal(seen[0], groupvit.get_tokenizer()([caption])) and "fusion=True" in repr(grounder)
    assert not torch.equal(opened.labels, reference.labels)
    off = PhraseGrounder(fused, fusion=False).ground(image, caption)  # the dual encoder
    assert seen[-1] is None and torch.equal(off.labels, reference.labels)
    assert PhraseGrounder(plain, fusion=True).fusion is False  # nothing to switch on


def test_relative_output_bounds_the_fusion_share_and_is_read_off_the_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    layer = GatedCrossAttention(8, 6, 2, relative_output=True)
    with torch.no_grad():
        layer.alpha.fill_(0.3)
    x, context = torch.randn(2, 5, 8), Context(torch.randn(2, 3, 6), None)
    out = layer(x, context)
    torch.testing.assert_close(out.norm(dim=-1), 0.3 * x.norm(dim=-1))
    model = groupvit.create_model(
        "groupvit_tiny_synthetic", **{"fusion.layers": 2, "fusion.relative_output": True}
    )
    _open_gates(model, 0.25)
    sd = model.state_dict()
    assert fusion_overrides(sd) == {
        "fusion.layers": 2,
        "fusion.text_layers": 0,
        "fusion.relative_output": True,
    }
    path = tmp_path / "relative.pth"
    torch.save({"state_dict": sd}, path)
    loaded = load_model(path)
    assert loaded.config.fusion.relative_output and loaded.vision.stages[0].blocks[4].fusion.relative_output
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in sd.items())
