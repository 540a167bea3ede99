"""Layers: attention against a naive reference, straight-through Gumbel, grouping, patch/pos embed."""

from __future__ import annotations

import math

import pytest
import torch

from groupvit.layers import (
    AssignAttention,
    Attention,
    ConvStem,
    CrossAttention,
    GroupingBlock,
    MixerMlp,
    PatchEmbed,
    hard_softmax,
    resample_pos_embed,
)


def _naive_attention(q, k, v, causal=False):
    """Per-head softmax(q k^T / sqrt(d)) v written out, (B, nh, N, hd)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        n = q.shape[-2]
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1) @ v


@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_matches_naive(causal: bool) -> None:
    attn = Attention(dim=16, num_heads=4)
    x = torch.randn(2, 5, 16)
    qkv = attn.qkv(x).reshape(2, 5, 3, 4, 4).permute(2, 0, 3, 1, 4)  # q, k, v rows in that order
    ref = _naive_attention(*qkv, causal=causal).transpose(1, 2).reshape(2, 5, 16)
    torch.testing.assert_close(attn(x, is_causal=causal), attn.proj(ref), atol=1e-6, rtol=1e-5)
    if causal:  # the first token sees only itself: changing later tokens leaves it unchanged
        y = x.clone()
        y[:, 1:] += 1.0
        torch.testing.assert_close(attn(y, is_causal=True)[:, 0], attn(x, is_causal=True)[:, 0])


def test_cross_attention_matches_naive() -> None:
    attn = CrossAttention(dim=8, num_heads=2)
    q_in, kv_in = torch.randn(2, 3, 8), torch.randn(2, 7, 8)

    def heads(t):
        return t.reshape(2, -1, 2, 4).transpose(1, 2)

    ref = _naive_attention(heads(attn.q_proj(q_in)), heads(attn.k_proj(kv_in)), heads(attn.v_proj(kv_in)))
    out = attn(q_in, kv_in)
    assert out.shape == (2, 3, 8)
    torch.testing.assert_close(out, attn.proj(ref.transpose(1, 2).reshape(2, 3, 8)), atol=1e-6, rtol=1e-5)


def test_hard_softmax_straight_through() -> None:
    logits = torch.randn(2, 4, 6, requires_grad=True)
    out = hard_softmax(logits, dim=1)
    assert torch.equal(
        out.detach(), torch.nn.functional.one_hot(logits.argmax(1), 4).permute(0, 2, 1).float()
    )
    (out * torch.randn_like(out)).sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_gumbel_assignment_is_one_hot_with_gradient() -> None:
    assign = AssignAttention(dim=8).train()
    logits = torch.randn(3, 5, 11, requires_grad=True)
    attn = assign.assignment(logits)
    # forward: exactly one group per token (one-hot along the group axis)
    assert set(attn.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(attn.detach().sum(dim=1), torch.ones(3, 11))
    # Gumbel noise: the training assignment is random (differs from the noiseless argmax somewhere)
    draws = torch.stack([assign.assignment(logits).detach().argmax(1) for _ in range(20)])
    assert (draws != logits.argmax(1)).any()
    (attn * torch.randn_like(attn)).sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0

    assign.eval()  # eval: deterministic hard argmax of the plain softmax
    hard = assign.assignment(logits).detach()
    assert torch.equal(hard.argmax(1), logits.argmax(1)) and torch.equal(hard.sum(1), torch.ones(3, 11))


def test_assign_attention_output_and_gradients() -> None:
    assign = AssignAttention(dim=8, assign_eps=1.0).eval()
    q, k = torch.randn(2, 3, 8), torch.randn(2, 10, 8)
    out, soft = assign(q, k)
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(2, 10))  # softmax over groups
    # reference: one-hot rows divided by (count + eps), values averaged, projected
    logits = assign.q_proj(q) @ assign.k_proj(k).transpose(1, 2) / math.sqrt(8)
    onehot = torch.nn.functional.one_hot(logits.argmax(1), 3).permute(0, 2, 1).float()
    weights = onehot / (onehot.sum(-1, keepdim=True) + 1.0)
    torch.testing.assert_close(out, assign.proj(weights @ assign.v_proj(k)), atol=1e-6, rtol=1e-5)

    assign.train()
    q.requires_grad_(True)
    out, _ = assign(q, k)
    out.sum().backward()
    for p in (assign.q_proj.weight, assign.k_proj.weight, assign.v_proj.weight, q):
        grad = p.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_grouping_block_shapes_and_autocast() -> None:
    block = GroupingBlock(dim=16, num_heads=2, num_group_tokens=6, num_output_groups=3).eval()
    x, groups = torch.randn(2, 20, 16), torch.randn(2, 6, 16)
    out, soft = block(x, groups)
    assert out.shape == (2, 3, 16) and soft.shape == (2, 3, 20)
    torch.testing.assert_close(soft.sum(1), torch.ones(2, 20))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out16, soft16 = block(x, groups)
    assert soft16.dtype == torch.float32 and torch.isfinite(out16).all()
    torch.testing.assert_close(soft16, soft, atol=5e-2, rtol=0)


def test_grouping_block_without_query_residual_segments_see_only_their_tokens() -> None:
    """query_residual=False: a segment token is a function of its assigned tokens only.

    With hard assignment in eval, a group that owns no token gets the same output whatever the image;
    with the paper's residual the (image-attended) query leaks into it and the output changes.
    """
    torch.manual_seed(0)
    outs = {}
    for residual in (True, False):
        block = GroupingBlock(
            dim=16, num_heads=2, num_group_tokens=6, num_output_groups=6, query_residual=residual
        )
        block.assign.hard = True
        block.eval()
        groups = torch.randn(1, 6, 16)
        # every image token equal: all of them go to the same group, five groups stay empty
        x1 = torch.randn(1, 1, 16).expand(1, 10, 16)
        x2 = torch.randn(1, 1, 16).expand(1, 10, 16)
        with torch.no_grad():
            (o1, s1), (o2, s2) = block(x1, groups), block(x2, groups)
        empty = (s1.argmax(1)[0].bincount(minlength=6) == 0) & (s2.argmax(1)[0].bincount(minlength=6) == 0)
        assert int(empty.sum()) >= 4
        outs[residual] = (o1[0, empty], o2[0, empty])
    e1, e2 = outs[False]
    torch.testing.assert_close(e1, e2)  # empty groups: input-independent
    torch.testing.assert_close(e1, e1[:1].expand_as(e1))  # and all alike
    r1, r2 = outs[True]
    assert (r1 - r2).abs().max() > 1e-2  # the residual carries the image into empty groups


def test_mixer_mlp_mixes_tokens() -> None:
    mlp = MixerMlp(6, 12, 3)
    assert mlp(torch.randn(2, 6, 5)).shape == (2, 3, 5)


def test_patch_embed_shapes_and_errors() -> None:
    embed = PatchEmbed(patch_size=8, in_chans=3, embed_dim=16)
    tokens, grid = embed(torch.randn(2, 3, 64, 40))
    assert tokens.shape == (2, 8 * 5, 16) and grid == (8, 5)
    with pytest.raises(ValueError, match=r"expected images \[B, 3, H, W\]"):
        embed(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match=r"got shape \(2, 1, 64, 64\)"):
        embed(torch.randn(2, 1, 64, 64))
    with pytest.raises(ValueError, match="smaller than one"):
        embed(torch.randn(1, 3, 4, 64))


def test_resample_pos_embed() -> None:
    pos = torch.randn(1, 14 * 14, 8)
    assert resample_pos_embed(pos, (14, 14)) is pos  # identity at the trained grid
    assert resample_pos_embed(pos, (28, 28)).shape == (1, 28 * 28, 8)  # 448 x 448 input
    assert resample_pos_embed(pos, (14, 21), (14, 14)).shape == (1, 14 * 21, 8)  # 224 x 336
    const = torch.full((1, 196, 8), 0.5)
    torch.testing.assert_close(resample_pos_embed(const, (20, 9)), torch.full((1, 180, 8), 0.5))
    # bicubic, align_corners=False, no anti-aliasing
    grid = pos.reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    ref = torch.nn.functional.interpolate(grid, size=(7, 30), mode="bicubic", align_corners=False)
    torch.testing.assert_close(resample_pos_embed(pos, (7, 30)), ref.permute(0, 2, 3, 1).reshape(1, 210, 8))
    with pytest.raises(ValueError, match="positions"):
        resample_pos_embed(pos, (7, 7), (10, 10))


def test_conv_stem_tiles_like_the_patch_projection() -> None:
    stem = ConvStem(patch_size=8, in_chans=3, embed_dim=16)
    # three stride-2 convs (8 = 2 ** 3), widening to the token width
    assert [m.out_channels for m in stem.convs if isinstance(m, torch.nn.Conv2d)] == [8, 8, 16]
    tokens, grid = stem(torch.randn(2, 3, 64, 44))  # trailing pixels dropped, as PatchEmbed does
    assert tokens.shape == (2, 8 * 5, 16) and grid == (8, 5)
    # a token sees its patch's neighbourhood only (receptive field 1 + 2 + 4 + 8 = 15 px): the
    # bottom-right patch does not reach the top-left token (eval: BatchNorm's running statistics)
    stem.eval()
    x = torch.randn(1, 3, 64, 64)
    y = x.clone()
    y[:, :, 56:, 56:] += 1.0
    assert torch.equal(stem(x)[0][0, 0], stem(y)[0][0, 0]) and not torch.equal(stem(x)[0], stem(y)[0])
    with pytest.raises(ValueError, match="a conv stem needs a power-of-two patch_size >= 2, got 6"):
        ConvStem(patch_size=6, in_chans=3, embed_dim=16)
    with pytest.raises(ValueError, match="extra_convs must be >= 0, got -1"):
        ConvStem(patch_size=8, in_chans=3, embed_dim=16, extra_convs=-1)
    with pytest.raises(ValueError, match="smaller than one"):
        stem(torch.randn(1, 3, 4, 64))


def test_conv_stem_extra_convs_widen_the_receptive_field() -> None:
    torch.manual_seed(0)
    plain = ConvStem(patch_size=8, in_chans=3, embed_dim=16).eval()
    deep = ConvStem(patch_size=8, in_chans=3, embed_dim=16, extra_convs=1).eval()
    # one stride-1 conv after each stride-2 conv, at that conv's width
    assert [m.out_channels for m in deep.convs if isinstance(m, torch.nn.Conv2d)] == [8, 8, 8, 8, 16, 16]
    assert [m.stride for m in deep.convs if isinstance(m, torch.nn.Conv2d)] == [(2, 2), (1, 1)] * 3
    x = torch.randn(1, 3, 64, 64)

    def reach(stem: ConvStem) -> int:
        """The last pixel (p, p) whose change moves the top-left token."""
        moved = []
        for p in range(64):
            y = x.clone()
            y[:, :, p, p] += 1.0
            moved.append(not torch.equal(stem(x)[0][0, 0], stem(y)[0][0, 0]))
        return max(p for p, m in enumerate(moved) if m)

    # the top-left token sees its own 8-px patch (padding on the other side), then 14 px more
    assert reach(plain) == 7 and reach(deep) == 21
    assert deep(x)[0].shape == plain(x)[0].shape == (1, 64, 16)


def test_pyramid_stem_puts_the_deeper_stems_view_on_the_finer_grid() -> None:
    torch.manual_seed(0)
    deep = ConvStem(patch_size=8, in_chans=3, embed_dim=16, extra_convs=1).eval()
    pyramid = ConvStem(patch_size=4, in_chans=3, embed_dim=16, extra_convs=1, pyramid=True).eval()
    # the same convs as the 8-px stem, one projection more at the 4-px stage
    assert [m.out_channels for m in pyramid.convs if isinstance(m, torch.nn.Conv2d)] == [8, 8, 8, 8, 16, 16]
    pyramid.load_state_dict(
        {**deep.state_dict(), **{f"fine_proj.{k}": v for k, v in pyramid.fine_proj.state_dict().items()}}
    )
    tokens, grid = pyramid(torch.randn(2, 3, 64, 44))  # odd coarse grids drop the overhang
    assert grid == (16, 11) and tokens.shape == (2, 176, 16)
    # with the fine projection zeroed, each 8-px token of the deep stem covers its 2 x 2 fine cells
    with torch.no_grad():
        pyramid.fine_proj.weight.zero_()
        pyramid.fine_proj.bias.zero_()
    x = torch.randn(2, 3, 64, 48)
    coarse, coarse_grid = deep(x)
    assert coarse_grid == (8, 6)
    up = coarse.reshape(2, 8, 6, 16).repeat_interleave(2, 1).repeat_interleave(2, 2)
    torch.testing.assert_close(pyramid(x)[0], up.reshape(2, 192, 16))


def test_vision_config_stem() -> None:
    from groupvit.config import VisionConfig
    from groupvit.models.vision import GroupViTVisionTower

    tower = GroupViTVisionTower(
        VisionConfig(
            image_size=32,
            patch_size=8,
            width=16,
            stem="conv",
            depths=(1,),
            num_heads=(2,),
            num_group_tokens=(4,),
            num_output_groups=(4,),
        )
    )
    assert isinstance(tower.patch_embed, ConvStem) and tower(torch.randn(2, 3, 32, 32)).shape == (2, 16)
    with pytest.raises(ValueError, match="stem must be 'patch', 'conv' or 'conv_pyramid', got 'cnn'"):
        VisionConfig(stem="cnn")
    with pytest.raises(ValueError, match="stem_extra_convs must be >= 0 and needs a conv stem, got 1"):
        VisionConfig(stem_extra_convs=1)
    with pytest.raises(ValueError, match="stem_extra_convs must be >= 0 and needs a conv stem, got -1"):
        VisionConfig(stem="conv", stem_extra_convs=-1)
    deep = GroupViTVisionTower(
        VisionConfig(
            image_size=32,
            patch_size=8,
            width=16,
            stem="conv",
            stem_extra_convs=2,
            depths=(1,),
            num_heads=(2,),
            num_group_tokens=(4,),
            num_output_groups=(4,),
        )
    )
    assert sum(isinstance(m, torch.nn.Conv2d) for m in deep.patch_embed.convs) == 9
    fine = VisionConfig(
        image_size=32,
        patch_size=4,
        width=16,
        stem="conv_pyramid",
        depths=(1,),
        num_heads=(2,),
        num_group_tokens=(4,),
        num_output_groups=(4,),
    )
    tower = GroupViTVisionTower(fine)
    assert tower.patch_embed.pyramid and fine.grid_size == (8, 8)
    assert tower.forward_features(torch.randn(2, 3, 32, 32)).grid_size == (8, 8)


def test_position_embedding_is_resampled_once_while_the_weights_stay() -> None:
    """Inference at one size resamples once; a weight update, another grid or a gradient to
    compute gives a fresh resampling equal to resample_pos_embed's."""
    from groupvit import create_model

    vision = create_model("groupvit_tiny").vision
    grid = (vision.pos_grid[0] + 3, vision.pos_grid[1] + 1)
    with torch.no_grad():
        first = vision.position_embedding(grid)
        assert vision.position_embedding(grid) is first
        assert torch.equal(first, resample_pos_embed(vision.pos_embed, grid, vision.pos_grid))
        vision.pos_embed.add_(1.0)  # what an optimiser step does
        updated = vision.position_embedding(grid)
        assert updated is not first
        assert torch.equal(updated, resample_pos_embed(vision.pos_embed, grid, vision.pos_grid))
        assert vision.position_embedding((grid[0], grid[1] + 1)).shape[1] == grid[0] * (grid[1] + 1)
    with_grad = vision.position_embedding(grid)
    assert with_grad.requires_grad and with_grad is not vision.position_embedding(grid)
