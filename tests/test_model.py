"""GroupViT model and factory: every preset runs, gradients reach every parameter, API contracts."""

from __future__ import annotations

import json
import math

import pytest
import torch

from groupvit import GroupViT, create_model, get_model_config, list_models
from groupvit.config import GroupViTConfig, VisionConfig
from groupvit.losses import ContrastiveLoss, MultiLabelContrastiveLoss
from groupvit.presets import _CONFIG_DIR


def _tokens(batch: int, length: int = 12, vocab: int = 49408) -> torch.Tensor:
    tokens = torch.zeros(batch, length, dtype=torch.long)
    tokens[:, 0] = vocab - 2
    for b in range(batch):
        n = 2 + b % 5
        tokens[b, 1 : 1 + n] = torch.randint(1, vocab - 2, (n,))
        tokens[b, 1 + n] = vocab - 1  # end of text: the largest id
    return tokens


@pytest.fixture(scope="module")
def tiny() -> GroupViT:
    torch.manual_seed(0)
    return create_model("groupvit_tiny")


def test_presets_are_override_files() -> None:
    names = list_models()
    assert {"groupvit_s", "groupvit_tiny"} <= set(names)
    assert get_model_config("groupvit_s") == GroupViTConfig()  # the defaults are GroupViT-S
    for name in names:
        overrides = json.loads((_CONFIG_DIR / f"{name}.json").read_text())
        assert GroupViTConfig.from_dict(overrides) == get_model_config(name)


@pytest.mark.parametrize("name", list_models())
def test_every_preset_forward(name: str) -> None:
    model = create_model(name).eval()
    cfg = model.config
    size = cfg.vision.image_size
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size), _tokens(2, vocab=cfg.text.vocab_size))
        seg = model.forward_segmentation(torch.randn(1, 3, size, size))
    assert out.image_embeds.shape == out.text_embeds.shape == (2, cfg.embed_dim)
    assert torch.isfinite(out.image_embeds).all() and torch.isfinite(out.text_embeds).all()
    torch.testing.assert_close(out.image_embeds.norm(dim=-1), torch.ones(2))
    side = size // cfg.vision.patch_size
    n_tokens = side * side
    for a, groups in zip(seg.assignments, cfg.vision.num_output_groups):
        assert a.shape == (1, groups, n_tokens)
        n_tokens = groups
    assert seg.group_embeds.shape == (1, cfg.vision.num_output_groups[-1], cfg.embed_dim)


def test_preset_parameter_counts() -> None:
    counts = {
        n: sum(p.numel() for p in create_model(n).parameters()) for n in ("groupvit_s", "groupvit_tiny")
    }
    assert counts["groupvit_s"] == 55_726_610
    assert 100_000 < counts["groupvit_tiny"] < 1_000_000


def test_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    model = create_model("groupvit_tiny").train()
    B, K = 4, 3
    images = torch.randn(B, 3, 64, 64)
    text = _tokens(B * (1 + K)).reshape(B, 1 + K, -1)
    image_embeds = model.encode_image(images)
    text_embeds = model.encode_text(text.flatten(0, 1)).reshape(B, 1 + K, -1)
    loss = ContrastiveLoss()(image_embeds, text_embeds[:, 0], model.logit_scale_value())
    loss = loss + MultiLabelContrastiveLoss()(
        image_embeds, text_embeds[:, 1:], model.multi_label_logit_scale_value()
    )
    loss.backward()
    assert torch.isfinite(loss)
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not (p.grad.abs().sum() > 0)]
    assert not no_grad, no_grad
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_segmentation_features(tiny) -> None:
    tiny.eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        seg = tiny.forward_segmentation(images)
        image_embeds = tiny.encode_image(images)
    assert seg.grid_size == (8, 8)
    assert [tuple(a.shape) for a in seg.assignments] == [(2, 8, 64), (2, 4, 8)]
    for a in seg.assignments:  # soft: a distribution over groups per token, not one-hot
        torch.testing.assert_close(a.sum(dim=1), torch.ones(a.shape[0], a.shape[2]))
        assert ((a > 0) & (a < 1)).any()
    torch.testing.assert_close(seg.image_embeds, image_embeds)
    projected = tiny.image_projector(tiny.vision.forward_features(images).tokens)
    torch.testing.assert_close(seg.group_embeds, projected.detach())


@pytest.mark.parametrize(("hw", "grid"), [((128, 128), (16, 16)), ((64, 96), (8, 12)), ((72, 40), (9, 5))])
def test_any_input_size(tiny, hw, grid) -> None:
    tiny.eval()
    with torch.no_grad():
        seg = tiny.forward_segmentation(torch.randn(1, 3, *hw))
    assert seg.grid_size == grid
    assert seg.assignments[0].shape == (1, 8, grid[0] * grid[1])
    assert torch.isfinite(seg.image_embeds).all()


def test_logit_scales_and_no_weight_decay(tiny) -> None:
    assert tiny.logit_scale_value().item() == pytest.approx(1 / 0.07, rel=1e-5)
    assert tiny.multi_label_logit_scale_value().ndim == 0
    model = create_model("groupvit_tiny", logit_scale_init=math.log(1000.0))
    assert model.logit_scale_value().item() == pytest.approx(100.0)
    names = dict(tiny.named_parameters())
    nwd = tiny.no_weight_decay()
    assert nwd <= names.keys()
    assert {
        "vision.pos_embed",
        "logit_scale",
        "vision.stages.0.group_token",
        "vision.stages.1.group_token",
    } <= nwd


def test_init(tiny) -> None:
    fresh = create_model("groupvit_tiny")
    assert torch.count_nonzero(fresh.vision.stages[1].group_token) == 0  # stage-2 tokens start at zero
    assert fresh.vision.stages[0].group_token.std() > 0.005
    assert torch.equal(fresh.vision.norm.weight, torch.ones(32))
    assert torch.count_nonzero(fresh.vision.stages[0].blocks[0].attn.qkv.bias) == 0


def test_grad_checkpointing_gives_same_gradients() -> None:
    model = create_model("groupvit_tiny").eval()  # eval: no Gumbel noise, BN running stats
    images, tokens = torch.randn(2, 3, 64, 64), _tokens(2)

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad()
        out = model(images, tokens)
        (out.image_embeds @ out.text_embeds.t()).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    model.set_grad_checkpointing(True)
    assert model.vision.stages[0].grad_checkpointing and model.text.grad_checkpointing
    ckpt = grads()
    model.set_grad_checkpointing(False)
    assert plain.keys() == ckpt.keys()
    for n in plain:
        torch.testing.assert_close(ckpt[n], plain[n], atol=1e-6, rtol=1e-5)


def test_autocast_bf16(tiny) -> None:
    tiny.eval()
    images, tokens = torch.randn(2, 3, 64, 64), _tokens(2)
    with torch.no_grad():
        ref = tiny(images, tokens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = tiny(images, tokens)
            seg = tiny.forward_segmentation(images)
    assert torch.isfinite(out.image_embeds).all() and torch.isfinite(out.text_embeds).all()
    assert all(a.dtype == torch.float32 for a in seg.assignments)
    torch.testing.assert_close(out.text_embeds.float(), ref.text_embeds, atol=0.05, rtol=0)


def test_bad_inputs(tiny) -> None:
    with pytest.raises(ValueError, match="expected images"):
        tiny.encode_image(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="expected images"):
        tiny.encode_image(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="token ids"):
        tiny.encode_text(torch.zeros(2, 3, 77, dtype=torch.long))
    with pytest.raises(ValueError, match="context length"):
        tiny.encode_text(torch.zeros(1, 78, dtype=torch.long))


def test_overrides() -> None:
    cfg = get_model_config(
        "groupvit_tiny", **{"vision.drop_path_rate": 0.2}, text={"layers": 1}, embed_dim=16
    )
    assert cfg.vision.drop_path_rate == 0.2 and cfg.vision.width == 32
    assert cfg.text.layers == 1 and cfg.text.width == 8 and cfg.embed_dim == 16
    model = create_model("groupvit_tiny", vision={"num_output_groups": [6, 3]}).eval()
    assert model.forward_segmentation(torch.randn(1, 3, 64, 64)).group_embeds.shape[1] == 3
    with pytest.raises(KeyError, match="'vision.widht'"):
        create_model("groupvit_tiny", **{"vision.widht": 8})
    with pytest.raises(KeyError, match="'embed_dims'"):
        get_model_config("groupvit_tiny", embed_dims=8)
    with pytest.raises(ValueError, match="unknown model 'groupvit_xl'"):
        create_model("groupvit_xl")
    with pytest.raises(ValueError, match="num_output_groups"):
        VisionConfig(num_output_groups=(64,))
    roundtrip = GroupViTConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert roundtrip == cfg


def test_get_tokenizer() -> None:
    from groupvit import get_tokenizer

    tokens = get_tokenizer()(["a photo of a cat."])
    assert tokens.shape == (1, 77) and tokens.dtype == torch.long
    # CLIP BPE: start, "a photo of a cat ." (a, photo, of, a, cat, .: 6 tokens), end, then zeros
    assert (
        tokens[0, :8].tolist() == [49406, 320, 1125, 539, 320, 2368, 269, 49407]
        and int(tokens[0, 8:].sum()) == 0
    )


def test_encode_image_with_assignments_matches_encode_image() -> None:
    import groupvit

    model = groupvit.create_model("groupvit_tiny").eval()
    x = torch.randn(2, 3, 64, 64)
    out = model.encode_image_with_assignments(x, normalize=True)
    torch.testing.assert_close(out.image_embeds, model.encode_image(x, normalize=True))
    feats = model.forward_segmentation(x)
    assert len(out.assignments) == len(feats.assignments)
    for a, b in zip(out.assignments, feats.assignments):
        torch.testing.assert_close(a, b)
