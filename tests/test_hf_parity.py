"""Numerical parity with HF transformers' GroupViT on the same (random) weights."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from benchmark_workloads import hf_embeds  # noqa: E402

from groupvit import create_model  # noqa: E402
from groupvit.checkpoint import convert_state_dict, hf_config_dict  # noqa: E402
from groupvit.config import GroupViTConfig  # noqa: E402
from groupvit.layers import resample_pos_embed  # noqa: E402


def hf_config(cfg: GroupViTConfig) -> transformers.GroupViTConfig:
    return transformers.GroupViTConfig(**hf_config_dict(cfg))


def randomise_(model: torch.nn.Module, seed: int = 0) -> None:
    """Perturb every parameter and BatchNorm buffer so that a wrong mapping cannot go unnoticed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "group_token" in name:
                p.copy_(noise * 0.5)
            elif "assign.q_proj.weight" in name or "assign.k_proj.weight" in name:
                p.copy_(noise * p.shape[1] ** -0.25)  # sharp, non-uniform assignments (logits of order 1)
            elif p.ndim == 1 and ("norm" in name or "layernorm" in name or name.endswith(".1.weight")):
                p.add_(noise * 0.1)  # LN / BN affine parameters stay near (1, 0)
            else:
                p.add_(noise * 0.02)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)


def make_tokens(batch: int, length: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """CLIP-like ids: SOT, random words, EOT (the largest id), zero padding."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(batch, length, dtype=torch.long)
    for b in range(batch):
        n = 3 + b
        tokens[b, 0] = vocab - 2
        tokens[b, 1 : 1 + n] = torch.randint(1, vocab - 2, (n,), generator=g)
        tokens[b, 1 + n] = vocab - 1
    return tokens


def check_parity(name: str, batch: int, seq_len: int) -> dict[str, float]:
    ours = create_model(name, **{"vision.drop_path_rate": 0.0}).eval()
    cfg = ours.config
    hf = transformers.GroupViTModel(hf_config(cfg)).eval()
    randomise_(hf)
    sd = convert_state_dict(hf.state_dict(), src="hf")
    ours.load_state_dict(sd | {"multi_label_logit_scale": ours.multi_label_logit_scale.detach()})

    size = cfg.vision.image_size
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    tokens = make_tokens(batch, seq_len, cfg.text.vocab_size)
    with torch.no_grad():
        ref = hf(input_ids=tokens, pixel_values=images, output_attentions=True, return_dict=True)
        out = ours(images, tokens)
        seg = ours.forward_segmentation(images)
        logits = out.logit_scale * out.image_embeds @ out.text_embeds.t()
        # the projected, unnormalised features (an output object in transformers 5, a tensor in 4)
        hf_text = hf_embeds(hf.get_text_features(input_ids=tokens))
        hf_image = hf_embeds(hf.get_image_features(pixel_values=images))
        mine_text, mine_image = ours.encode_text(tokens), ours.encode_image(images)
    ref_groupings = ref.vision_model_output.attentions
    errors = {
        "text_features": (mine_text - hf_text).abs().max().item(),
        "image_features": (mine_image - hf_image).abs().max().item(),
        "image_embeds": (out.image_embeds - ref.image_embeds).abs().max().item(),
        "text_embeds": (out.text_embeds - ref.text_embeds).abs().max().item(),
        "logits": (logits - ref.logits_per_image).abs().max().item(),
    }
    assert len(seg.assignments) == len(ref_groupings)
    for i, (a, r) in enumerate(zip(seg.assignments, ref_groupings)):
        assert a.shape == r.shape
        errors[f"assignment_{i}"] = (a - r).abs().max().item()
        # the test is only meaningful with non-degenerate groupings: several groups used, confident rows
        assert a.argmax(dim=1).unique().numel() > 1 and a.max() > 2.0 / a.shape[1]
    return errors


def test_parity_tiny() -> None:
    errors = check_parity("groupvit_tiny", batch=2, seq_len=12)
    print(errors)
    assert all(e < 1e-4 for e in errors.values()), errors


def test_parity_groupvit_s() -> None:
    errors = check_parity("groupvit_s", batch=2, seq_len=16)
    print(errors)
    assert all(e < 1e-4 for e in errors.values()), errors


@pytest.mark.parametrize("hw", [(128, 128), (64, 96), (96, 40)])
def test_pos_embed_resampling_matches_hf(hw: tuple[int, int]) -> None:
    ours = create_model("groupvit_tiny")
    hf = transformers.GroupViTModel(hf_config(ours.config))
    randomise_(hf)
    ours.load_state_dict(
        convert_state_dict(hf.state_dict(), src="hf") | {"multi_label_logit_scale": torch.tensor(0.0)}
    )
    h, w = hw[0] // 8, hw[1] // 8
    dummy = torch.zeros(1, h * w, ours.config.vision.width)
    with torch.no_grad():
        ref = hf.vision_model.embeddings.interpolate_pos_encoding(dummy, *hw)
        mine = resample_pos_embed(ours.vision.pos_embed, (h, w), ours.vision.pos_grid)
    assert mine.shape == (1, h * w, ours.config.vision.width)
    torch.testing.assert_close(mine, ref, atol=1e-6, rtol=0)
