"""The speed paths give the same numbers as the plain ones: text trimming, oneDNN linear, scoring."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from groupvit import create_model
from groupvit.layers import Linear
from groupvit.layers import linear as linear_mod
from groupvit.models.groupvit import SegmentationFeatures
from groupvit.models.text import trimmed_length
from groupvit.zero_shot_functional import (
    background_channel,
    group_class_affinity,
    group_to_pixel_map,
    scores_from_features,
    stage_group_maps,
)


def _tokens(lengths: list[int], context: int = 77, vocab: int = 49408) -> torch.Tensor:
    """CLIP-like rows: sot, ``n`` random words, eot (the largest id), zero padding."""
    tokens = torch.zeros(len(lengths), context, dtype=torch.long)
    for row, n in enumerate(lengths):
        tokens[row, 0] = vocab - 2
        tokens[row, 1 : 1 + n] = torch.randint(1, vocab - 2, (n,))
        tokens[row, 1 + n] = vocab - 1
    return tokens


def test_trimmed_length() -> None:
    assert trimmed_length(torch.tensor([3, 10]), 77) == 16  # max eot 10 -> 11 columns -> multiple of 8
    assert trimmed_length(torch.tensor([7]), 77) == 8
    assert trimmed_length(torch.tensor([76]), 77) == 77  # never beyond the context
    assert trimmed_length(torch.tensor([5]), 77, multiple=1) == 6
    assert trimmed_length(torch.tensor([], dtype=torch.long), 77) == 77


@pytest.mark.parametrize("name", ["groupvit_tiny", "groupvit_s"])
def test_trimmed_text_equals_untrimmed(name: str) -> None:
    model = create_model(name).eval()
    text = model.text
    tokens = _tokens([3, 12, 5, 20], vocab=model.config.text.vocab_size)
    with torch.no_grad():
        trimmed = text(tokens)  # runs 24 of the 77 columns
        full = text.forward_features(tokens)[torch.arange(4), tokens.argmax(-1)]
    torch.testing.assert_close(trimmed, full, atol=1e-5, rtol=0)  # row counts pick different GEMM kernels


def test_trimmed_text_gradients_equal_untrimmed() -> None:
    model = create_model("groupvit_tiny").train()
    tokens = _tokens([2, 9, 4], vocab=model.config.text.vocab_size)
    weights = torch.randn(3, model.config.text.width)

    def grads(pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        (pooled * weights).sum().backward()
        return {n: p.grad.clone() for n, p in model.text.named_parameters() if p.grad is not None}

    trimmed = grads(model.text(tokens))
    full = grads(model.text.forward_features(tokens)[torch.arange(3), tokens.argmax(-1)])
    assert trimmed.keys() == full.keys() and "positional_embedding" in trimmed
    for name in full:
        torch.testing.assert_close(trimmed[name], full[name], atol=1e-5, rtol=1e-4, msg=name)


def test_full_length_rows_are_not_trimmed() -> None:
    model = create_model("groupvit_tiny").eval()
    tokens = _tokens([75], vocab=model.config.text.vocab_size)  # eot in the last column
    with torch.no_grad():
        torch.testing.assert_close(model.text(tokens), model.text.forward_features(tokens)[:, -1])


def _grads(fn, x: torch.Tensor, layer: Linear) -> tuple[torch.Tensor, ...]:
    out = fn(x, layer.weight, layer.bias)
    return (out, *torch.autograd.grad(out.square().sum(), (x, layer.weight, layer.bias)))


@pytest.mark.parametrize("shape", [(2, 300, 48), (1000, 48), (4, 15, 48)])
def test_onednn_linear_matches_f_linear(shape: tuple[int, ...]) -> None:
    """The oneDNN path's forward and gradients are F.linear's to fp32 rounding."""
    x = torch.randn(*shape, requires_grad=True)
    layer = Linear(48, 80)
    out, *grads = _grads(linear_mod.onednn_linear, x, layer)
    ref, *ref_grads = _grads(F.linear, x, layer)
    assert out.shape == (*shape[:-1], 80) and out.is_contiguous()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize(
    "capability, threads, onednn",
    [("AVX512", 2, True), ("AVX512", 1, False), ("AVX2", 2, False), ("DEFAULT", 2, False)],
)
def test_linear_follows_the_instruction_set_and_threads(
    monkeypatch: pytest.MonkeyPatch, capability: str, threads: int, onednn: bool
) -> None:
    """oneDNN for large products exactly when torch's CPU kernels run AVX-512 on more than one
    thread, F.linear otherwise."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    linear_mod._avx512.cache_clear()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert linear_mod.onednn_preferred() == (onednn and torch.backends.mkldnn.is_available())
        layer = Linear(48, 80)
        x = torch.randn(2, 300, 48, requires_grad=True)
        expected = linear_mod.onednn_linear if linear_mod.onednn_preferred() else F.linear
        out, *grads = _grads(linear_mod.linear, x, layer)
        ref, *ref_grads = _grads(expected, x, layer)
        assert torch.equal(out, ref) and all(torch.equal(g, r) for g, r in zip(grads, ref_grads))
        small = torch.randn(4, 15, 48)  # 60 rows < MIN_ROWS: always F.linear
        assert torch.equal(layer(small), F.linear(small, layer.weight, layer.bias))
    finally:
        torch.set_num_threads(before)
        linear_mod._avx512.cache_clear()


@pytest.mark.parametrize("rows, cin, cout", [(8192, 48, 192), (8192, 192, 48), (848, 384, 1536)])
def test_one_thread_convolution_is_f_linear_bit_for_bit(rows: int, cin: int, cout: int, one_thread) -> None:
    """Why one thread runs F.linear: there PyTorch gives the 1x1 convolution to its im2col
    fallback, the same sgemm, so the results (forward and every gradient) are F.linear's bit for
    bit and only the fallback's copies are saved; a run trained before keeps its weights."""
    x = torch.randn(rows, cin, requires_grad=True)
    layer = Linear(cin, cout)
    out, *grads = _grads(linear_mod.onednn_linear, x, layer)
    ref, *ref_grads = _grads(F.linear, x, layer)
    assert torch.equal(out, ref) and all(torch.equal(g, r) for g, r in zip(grads, ref_grads))


def test_avx2_limit_turns_onednn_off() -> None:
    """The real switch: torch started under ATEN_CPU_CAPABILITY=avx2 runs every product on BLAS."""
    code = (
        "import torch; from groupvit.layers import linear as m; "
        "print(torch.backends.cpu.get_cpu_capability(), m.onednn_preferred())"
    )
    env = {
        **os.environ,
        "ATEN_CPU_CAPABILITY": "avx2",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    capability, preferred = out.stdout.split()
    assert preferred == "False" and capability in {"AVX2", "DEFAULT"}


@pytest.mark.parametrize("background", [True, False])
def test_scores_gather_equals_one_hot_product(background: bool) -> None:
    """Scores gathered per group == the protocol's one-hot pixel map @ affinity (+ background)."""
    g = torch.Generator().manual_seed(0)
    b, h, w, groups, k, d = 2, 5, 7, 6, 9, 16
    assignments = (
        (3 * torch.randn(b, 12, h * w, generator=g)).softmax(1),
        (3 * torch.randn(b, groups, 12, generator=g)).softmax(1),
    )
    features = SegmentationFeatures(
        assignments, torch.randn(b, groups, d, generator=g), torch.randn(b, d), (h, w)
    )
    classes = F.normalize(torch.randn(k, d, generator=g), dim=-1)
    size = (h * 16 + 3, w * 16)
    scores = scores_from_features(
        features, classes, 10.0, size, background=background, bg_thresh=0.3, top_k=4
    )

    one_hot = group_to_pixel_map(stage_group_maps(assignments)[-1], (h, w), size)  # [B, G, H, W]
    affinity = group_class_affinity(
        F.normalize(features.group_embeds, dim=-1),
        F.normalize(features.image_embeds, dim=-1),
        classes,
        10.0,
        4,
    )
    expected = torch.einsum("bghw,bgk->bkhw", one_hot, affinity)
    if background:
        expected = torch.cat([background_channel(expected, affinity, 0.3), expected], dim=1)
    assert torch.equal(scores, expected)
    assert torch.equal(scores.argmax(dim=1), expected.argmax(dim=1))


@pytest.mark.slow
def test_compiled_segmentation_equals_eager() -> None:
    """The optional torch.compile path (tools/benchmark.py --compile) computes the same features."""
    model = create_model("groupvit_tiny").eval()
    images = torch.randn(2, 3, 64, 64)
    compiled = torch.compile(model.forward_segmentation, dynamic=False)
    with torch.no_grad():
        out, ref = compiled(images), model.forward_segmentation(images)
    torch.testing.assert_close(out.group_embeds, ref.group_embeds, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.image_embeds, ref.image_embeds, atol=1e-4, rtol=1e-4)
    for a, r in zip(out.assignments, ref.assignments):
        torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-4)
