"""Losses: hand-computed values, chance levels, single-process path and a 2-process gather."""

import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from groupvit.losses import (
    ContrastiveLoss,
    ExclusiveGroupLoss,
    MultiLabelContrastiveLoss,
    NounGroupLoss,
    UnclaimedGroupLoss,
    gather_with_grad,
    image_text_similarity,
    rank_and_world_size,
)


def _cross_entropy_by_hand(logits: torch.Tensor, target: torch.Tensor) -> float:
    """-(sum_j t_j log softmax(l)_j), averaged over rows, in plain Python maths."""
    total = 0.0
    for row, trow in zip(logits.tolist(), target.tolist()):
        log_z = math.log(sum(math.exp(v) for v in row))
        total -= sum(t * (v - log_z) for v, t in zip(row, trow))
    return total / len(logits)


def test_single_process_needs_no_process_group() -> None:
    assert not dist.is_initialized()
    assert rank_and_world_size() == (0, 1)
    x = torch.randn(3, 4)
    assert gather_with_grad(x) is x


def test_contrastive_matches_hand_computation() -> None:
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    txt = torch.tensor([[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]])
    scale = torch.tensor(2.0)
    sim = [[sum(a * b for a, b in zip(i, t)) * 2.0 for t in txt.tolist()] for i in img.tolist()]
    eye = torch.eye(3)
    expected_i = _cross_entropy_by_hand(torch.tensor(sim), eye)
    expected_t = _cross_entropy_by_hand(torch.tensor(sim).t(), eye)
    loss = ContrastiveLoss()(img, txt, scale)
    assert loss.item() == pytest.approx(0.5 * (expected_i + expected_t), abs=1e-6)
    # inputs are normalised inside: scaling an embedding does not change the loss
    assert ContrastiveLoss()(img * 3.0, txt, scale).item() == pytest.approx(loss.item(), abs=1e-6)


def test_multi_label_matches_hand_computation() -> None:
    torch.manual_seed(1)
    B, K, D = 2, 3, 4
    img = F.normalize(torch.randn(B, D), dim=-1)
    prompts = F.normalize(torch.randn(B, K, D), dim=-1)
    scale = torch.tensor(5.0)
    flat = prompts.reshape(B * K, D)
    logits_i = scale * img @ flat.t()
    target_i = torch.zeros(B, B * K)
    target_i[0, :3] = 1 / 3
    target_i[1, 3:] = 1 / 3
    logits_p = scale * flat @ img.t()
    target_p = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3)
    expected = 0.5 * (_cross_entropy_by_hand(logits_i, target_i) + _cross_entropy_by_hand(logits_p, target_p))
    loss = MultiLabelContrastiveLoss()(img, prompts, scale)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_chance_levels() -> None:
    B, K, D = 4, 3, 8
    img = torch.zeros(B, D)
    img[:, 0] = 1.0
    prompts = torch.zeros(B, K, D)
    prompts[..., 0] = 1.0
    scale = torch.tensor(10.0)
    # identical embeddings give uniform logits: exactly the chance levels
    assert ContrastiveLoss()(img, img, scale).item() == pytest.approx(math.log(B), abs=1e-5)
    expected = 0.5 * (math.log(B * K) + math.log(B))
    assert MultiLabelContrastiveLoss()(img, prompts, scale).item() == pytest.approx(expected, abs=1e-5)


def test_gradients_flow_and_bad_shapes() -> None:
    img = torch.randn(4, 8, requires_grad=True)
    prompts = torch.randn(4, 3, 8, requires_grad=True)
    scale = torch.tensor(3.0, requires_grad=True)
    MultiLabelContrastiveLoss()(img, prompts, scale).backward()
    for t in (img, prompts, scale):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="prompt_embeds"):
        MultiLabelContrastiveLoss()(img, prompts[:2], scale)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _on_two_ranks(rank: int, port: int, body, args: tuple, out: torch.Tensor) -> None:
    """One of 2 gloo processes: ``out[rank] = body(rank, *args)`` (a flat float row)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        out[rank] = body(rank, *args)
        dist.barrier()  # no rank tears gloo down while the other is still in a collective
    finally:
        dist.destroy_process_group()
    # torch 2.14 + gloo sometimes aborts in interpreter teardown after an autograd all_gather
    # ("terminate called without an active exception"); the results are already in `out`.
    os._exit(0)


def _run_two_ranks(body, args: tuple, row_size: int) -> torch.Tensor:
    """[2, row_size]: ``body(rank, *args)`` of each of 2 spawned processes."""
    out = torch.zeros(2, row_size).share_memory_()
    mp.spawn(_on_two_ranks, args=(_free_port(), body, args, out), nprocs=2, join=True)
    return out


def _pooled_losses_on_rank(rank: int, img, txt, prompts) -> torch.Tensor:
    """Both losses on this rank's half of the batch -> [loss, grad of its images...]."""
    sl = slice(rank * 2, rank * 2 + 2)
    i = img[sl].clone().requires_grad_(True)
    scale = torch.tensor(4.0)
    loss = ContrastiveLoss()(i, txt[sl], scale) + MultiLabelContrastiveLoss()(i, prompts[sl], scale)
    loss.backward()
    return torch.cat([loss.detach().view(1), i.grad.flatten()])


def test_two_process_gather_matches_single_process() -> None:
    """Mean of the per-rank losses equals the single-process loss on the global batch, and so do grads."""
    torch.manual_seed(0)
    img, txt, prompts = torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 3, 5)
    out = _run_two_ranks(_pooled_losses_on_rank, (img, txt, prompts), 1 + 2 * 5)

    i = img.clone().requires_grad_(True)
    scale = torch.tensor(4.0)
    loss = ContrastiveLoss()(i, txt, scale) + MultiLabelContrastiveLoss()(i, prompts, scale)
    loss.backward()
    assert out[:, 0].mean().item() == pytest.approx(loss.item(), abs=1e-5)
    # each rank's gradient of its own loss w.r.t. its images, summed over ranks via the gather, equals
    # the gradient of (sum of rank losses) = 2 * global loss
    grads = out[:, 1:].reshape(4, 5)
    torch.testing.assert_close(grads, 2 * i.grad, atol=1e-5, rtol=1e-4)


def _group_prompt_grads_on_rank(rank: int, groups, prompts) -> torch.Tensor:
    """Multi-label loss on groups for this rank's half -> the gradient of its prompts, flat."""
    sl = slice(rank * 2, rank * 2 + 2)
    p = prompts[sl].clone().requires_grad_(True)
    MultiLabelContrastiveLoss()(groups[sl], p, torch.tensor(4.0)).backward()
    return p.grad.flatten()


def test_two_process_group_scores_give_the_prompt_gradients() -> None:
    """With groups, the gradient reaching the prompt gather comes from an einsum and is strided;
    gather_with_grad must still sum it right (it did not, by up to 0.5, before it was made contiguous)."""
    torch.manual_seed(0)
    groups, prompts = torch.randn(4, 3, 5), torch.randn(4, 2, 5)
    out = _run_two_ranks(_group_prompt_grads_on_rank, (groups, prompts), 2 * 2 * 5)
    p = prompts.clone().requires_grad_(True)
    MultiLabelContrastiveLoss()(groups, p, torch.tensor(4.0)).backward()
    torch.testing.assert_close(out.reshape(4, 2, 5), 2 * p.grad, atol=1e-5, rtol=1e-4)


def test_text_ids_equal_rows_equal_ids() -> None:
    from groupvit.losses import text_ids

    tok = torch.tensor(
        [[49406, 320, 2368, 49407, 0], [49406, 320, 1929, 49407, 0], [49406, 320, 2368, 49407, 0]]
    )
    ids = text_ids(tok)
    assert ids.dtype == torch.int64 and ids.shape == (3,)
    assert ids[0] == ids[2] and ids[0] != ids[1]
    assert text_ids(tok.view(3, 1, 5)).shape == (3, 1)


def test_duplicate_aware_losses_equal_paper_losses_without_duplicates() -> None:
    from groupvit.losses import text_ids

    B, K, D = 4, 3, 8
    img, txt, prompts = torch.randn(B, D), torch.randn(B, D), torch.randn(B, K, D)
    scale = torch.tensor(7.0)
    tokens = torch.arange(B * (1 + K) * 5).view(B, 1 + K, 5)  # every text distinct
    ids = text_ids(tokens)
    assert ContrastiveLoss()(img, txt, scale, ids[:, 0]).item() == pytest.approx(
        ContrastiveLoss()(img, txt, scale).item(), abs=1e-5
    )
    assert MultiLabelContrastiveLoss()(img, prompts, scale, ids[:, 1:]).item() == pytest.approx(
        MultiLabelContrastiveLoss()(img, prompts, scale).item(), abs=1e-5
    )


def test_duplicate_prompts_are_positives() -> None:
    torch.manual_seed(2)
    B, K, D = 2, 2, 4
    img = F.normalize(torch.randn(B, D), dim=-1)
    prompts = F.normalize(torch.randn(B, K, D), dim=-1)
    scale = torch.tensor(3.0)
    # image 0 has texts (a, b), image 1 has (a, c): text "a" is shared
    ids = torch.tensor([[10, 11], [10, 12]])
    flat = prompts.reshape(B * K, D)
    target_i = torch.tensor([[1, 1, 1, 0], [1, 0, 1, 1]], dtype=torch.float)
    target_i = target_i / target_i.sum(1, keepdim=True)
    target_p = torch.tensor([[1, 1], [1, 0], [1, 1], [0, 1]], dtype=torch.float)
    target_p = target_p / target_p.sum(1, keepdim=True)
    expected = 0.5 * (
        _cross_entropy_by_hand(scale * img @ flat.t(), target_i)
        + _cross_entropy_by_hand(scale * flat @ img.t(), target_p)
    )
    loss = MultiLabelContrastiveLoss()(img, prompts, scale, ids)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    # identical captions: both images are positives of both captions
    txt = F.normalize(torch.randn(B, D), dim=-1)
    same = torch.ones(B, B)
    expected_c = 0.5 * (
        _cross_entropy_by_hand(scale * img @ txt.t(), same / 2)
        + _cross_entropy_by_hand(scale * txt @ img.t(), same / 2)
    )
    assert ContrastiveLoss()(img, txt, scale, torch.tensor([5, 5])).item() == pytest.approx(
        expected_c, abs=1e-5
    )


def _split_assignment(h: int, w: int) -> torch.Tensor:
    """Two groups over an h x w grid: the left half 90% in group 0, the right half 90% in group 1
    [1, 2, h*w] (soft, as the softmax makes them)."""
    left = torch.full((h, w), 0.1)
    left[:, : w // 2] = 0.9
    return torch.stack([left, 1 - left]).reshape(1, 2, h * w)


def test_affinity_group_loss_values() -> None:
    from groupvit.losses import AffinityGroupLoss
    from groupvit.refine.pamr import pamr

    loss = AffinityGroupLoss(iterations=10)
    h = w = 8
    size = 32  # 4-px patches
    gen = torch.Generator().manual_seed(0)
    # a grouping constant over the image is PAMR's fixed point on any image: loss 0
    flat = torch.full((1, 2, h * w), 0.5)
    noisy = torch.rand(1, 3, size, size, generator=gen)
    assert loss(noisy, (flat,)).item() == pytest.approx(0.0, abs=1e-6)
    # two groups split down the middle: cheap where the image has an edge there, dear where not
    split = _split_assignment(h, w)
    two_tone = torch.zeros(1, 3, size, size)
    two_tone[..., size // 2 :] = 1.0
    two_tone = two_tone + 0.01 * torch.rand(1, 3, size, size, generator=gen)
    on_edge, no_edge = loss(two_tone, (split,)).item(), loss(noisy, (split,)).item()
    assert no_edge > 0.1 and on_edge < 0.01 * no_edge
    # the value is KL(target || P) with the target from pamr by hand
    pooled = torch.nn.functional.avg_pool2d(noisy, 4)  # one colour per 4-px patch
    target = pamr(pooled, split.view(1, 2, h, w), 10, (1, 2, 3, 6)).reshape(1, 2, h * w)
    expected = (target * (target.clamp_min(1e-8).log() - split.clamp_min(1e-8).log())).sum(1).mean()
    assert no_edge == pytest.approx(expected.item(), rel=1e-5)
    # stages multiply: a second stage that keeps the groups gives the same loss
    assert loss(noisy, (split, torch.eye(2)[None])).item() == pytest.approx(no_edge, rel=1e-6)
    # the assignment gets a gradient (the target is computed without one)
    logits = torch.randn(1, 2, h * w, requires_grad=True)
    loss(noisy, (logits.softmax(dim=1),)).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    # target="hard": the one-hot of each patch's best group is propagated instead; a flat soft
    # assignment is no longer at the target
    hard = AffinityGroupLoss(iterations=10, target="hard")
    one_hot = torch.stack([split[0, 0] > 0.5, split[0, 1] > 0.5]).float()[None]
    hard_target = pamr(pooled, one_hot.view(1, 2, h, w), 10, (1, 2, 3, 6)).reshape(1, 2, h * w)
    expected = (hard_target * (hard_target.clamp_min(1e-8).log() - split.clamp_min(1e-8).log())).sum(1).mean()
    assert hard(noisy, (split,)).item() == pytest.approx(expected.item(), rel=1e-5)
    flat_split = torch.stack([split[0, 0] * 0.02 + 0.49, 1 - (split[0, 0] * 0.02 + 0.49)])[
        None
    ]  # 50.8 / 49.2
    assert loss(two_tone, (flat_split,)).item() < 1e-4 < 0.05 < hard(two_tone, (flat_split,)).item()
    with pytest.raises(ValueError, match="affinity_target must be 'soft' or 'hard'"):
        AffinityGroupLoss(target="mean")
    with pytest.raises(ValueError, match="do not tile"):
        loss(torch.zeros(1, 3, size, size), (torch.full((1, 2, 60), 0.5),))
    with pytest.raises(ValueError, match="affinity_iterations must be >= 1"):
        AffinityGroupLoss(iterations=0)
    with pytest.raises(ValueError, match="affinity_dilations >= 1"):
        AffinityGroupLoss(dilations=())


def test_group_usage_floor_loss_values() -> None:
    from groupvit.losses import GroupUsageFloorLoss

    loss = GroupUsageFloorLoss(min_groups=3.0)
    G, N = 8, 12
    one = torch.zeros(1, G, N)
    one[:, 0] = 1.0  # one group owns the image: the whole floor
    assert loss((one,)).item() == pytest.approx(math.log(3.0), abs=1e-6)
    four = torch.eye(G)[:, torch.arange(N) % 4][None]  # four groups in equal shares: above the floor
    assert loss((four,)).item() == 0.0
    two = torch.eye(G)[:, torch.arange(N) % 2][None]
    assert loss((two,)).item() == pytest.approx(math.log(3.0) - math.log(2.0), abs=1e-6)
    # per image, then the mean; stages multiply (a second stage that keeps the groups changes nothing)
    assert loss((torch.cat([one, four]),)).item() == pytest.approx(math.log(3.0) / 2, abs=1e-6)
    assert loss((two, torch.eye(G)[None])).item() == pytest.approx(loss((two,)).item())
    logits = torch.zeros(1, G, N)
    logits[:, 0] = 3.0
    logits.requires_grad_(True)
    loss((logits.softmax(dim=1),)).backward()
    assert logits.grad[0, 0].sum() > 0  # descent moves patches out of the dominant group
    with pytest.raises(ValueError, match="usage_floor_groups must be >= 1"):
        GroupUsageFloorLoss(min_groups=0.5)


def test_group_usage_floor_loss_hard_counts_patches_in_their_best_group() -> None:
    from groupvit.losses import GroupUsageFloorLoss

    G, N = 8, 12
    hard = GroupUsageFloorLoss(min_groups=3.0, usage="hard")
    # a soft map spread evenly over two groups per patch but with one argmax everywhere: the soft
    # usage is above ln 2, the hard usage one group (the DFs1 case of docs/shapes.md)
    probs = torch.zeros(1, G, N)
    probs[:, 0], probs[:, 1:5] = 0.24, 0.19
    assert GroupUsageFloorLoss(3.0)((probs,)).item() == 0.0  # 5 groups in near-equal shares
    assert hard((probs,)).item() == pytest.approx(math.log(3.0), abs=1e-6)
    two = torch.eye(G)[:, torch.arange(N) % 2][None] * 0.6 + 0.4 / G
    assert hard((two,)).item() == pytest.approx(math.log(3.0) - math.log(2.0), abs=1e-6)
    # straight through: the soft map's gradient, raising every unused group alike (ln N each)
    logits = torch.zeros(1, G, N)
    logits[:, 0] = 3.0
    logits.requires_grad_(True)
    probs = logits.softmax(dim=1)
    probs.retain_grad()
    hard((probs,)).backward()
    expected = torch.full((G,), -math.log(N) / N)
    expected[0] = (math.log(1.0) + 1.0) / N  # the owner: -(ln u + 1) at u = 1, descent lowers it
    torch.testing.assert_close(probs.grad[0, :, 0], expected)
    assert logits.grad[0, 0].sum() > 0  # descent moves patches out of the dominant group
    with pytest.raises(ValueError, match="usage_floor_target must be 'soft' or 'hard'"):
        GroupUsageFloorLoss(usage="mean")


def test_group_balance_loss_values() -> None:
    from groupvit.losses import GroupBalanceLoss

    loss = GroupBalanceLoss()
    G, N = 4, 8
    # one-hot and evenly used: both terms are 0
    onehot = torch.eye(G).repeat(1, N // G).unsqueeze(0)  # [1, G, N]
    assert loss([onehot]).item() == pytest.approx(0.0, abs=1e-6)
    # flat assignments: evenly used (KL 0) but maximal entropy ln G
    flat = torch.full((2, G, N), 1.0 / G)
    assert loss([flat]).item() == pytest.approx(math.log(G), abs=1e-5)
    # collapse: every token one-hot on group 0 -> entropy 0, KL = ln G; stages add up
    collapsed = torch.zeros(2, G, N)
    collapsed[:, 0] = 1.0
    assert loss([collapsed]).item() == pytest.approx(math.log(G), abs=1e-5)
    assert loss([collapsed, flat]).item() == pytest.approx(2 * math.log(G), abs=1e-5)
    logits = torch.randn(2, G, N, requires_grad=True)
    loss([logits.softmax(dim=1)]).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_group_similarity_is_the_best_group() -> None:
    groups = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [-1.0, 0.0]]])  # [2, 2, 2]
    texts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    expected = torch.tensor([[1.0, 1.0, 0.8], [0.6, 0.8, 0.96]])
    torch.testing.assert_close(image_text_similarity(groups, texts), expected)
    torch.testing.assert_close(image_text_similarity(groups[:, 0], texts), groups[:, 0] @ texts.t())


def test_multi_label_on_groups() -> None:
    torch.manual_seed(2)
    B, G, K, D = 3, 4, 2, 8
    groups = F.normalize(torch.randn(B, G, D), dim=-1)
    prompts = F.normalize(torch.randn(B, K, D), dim=-1)
    scale = torch.tensor(4.0)
    loss = MultiLabelContrastiveLoss()
    # one group per image is the pooled case
    assert loss(groups[:, :1], prompts, scale).item() == pytest.approx(
        loss(groups[:, 0], prompts, scale).item()
    )
    # the value equals the hand computation from max-over-groups logits
    flat = prompts.reshape(B * K, D)
    sims = torch.tensor(
        [
            [max(sum(a * b for a, b in zip(g, t)) for g in img) for t in flat.tolist()]
            for img in groups.tolist()
        ]
    )
    target_i = torch.zeros(B, B * K)
    for b in range(B):
        target_i[b, b * K : (b + 1) * K] = 1 / K
    target_p = torch.eye(B).repeat_interleave(K, dim=0)
    expected = 0.5 * (
        _cross_entropy_by_hand(4.0 * sims, target_i) + _cross_entropy_by_hand(4.0 * sims.t(), target_p)
    )
    assert loss(groups, prompts, scale).item() == pytest.approx(expected, abs=1e-5)


def test_noun_group_loss_values_and_gradient() -> None:
    B, G, K, D = 2, 4, 2, 4
    scale = torch.tensor(50.0)
    prompts = torch.eye(D)[:K].expand(B, K, D).clone()  # prompt k = axis k
    # each prompt has exactly one matching group, orthogonal to the rest: near 0
    groups = torch.eye(D)[[0, 1, 2, 3]].expand(B, G, D).clone()
    assert NounGroupLoss()(groups, prompts, scale).item() == pytest.approx(0.0, abs=1e-6)
    # every group alike: ln G
    same = torch.ones(B, G, D)
    assert NounGroupLoss()(same, prompts, scale).item() == pytest.approx(math.log(G), abs=1e-5)
    # a second group claiming prompt 0 as well: -log(1/2) for that prompt, 0 for the other
    two = groups.clone()
    two[:, 2] = torch.eye(D)[0]
    assert NounGroupLoss()(two, prompts, scale).item() == pytest.approx(0.5 * math.log(2), abs=1e-5)
    two.requires_grad_(True)
    NounGroupLoss()(two, prompts, torch.tensor(1.0)).backward()
    assert two.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="group_embeds"):
        NounGroupLoss()(groups[:, 0], prompts, scale)


def test_exclusive_group_loss_values_and_gradient() -> None:
    eye = torch.eye(4)
    loss = ExclusiveGroupLoss()
    s = torch.tensor(5.0)
    prompts = eye[:3][None]  # [1, 3, 4]: three distinct prompts along axes 0, 1, 2
    ids, caption = torch.tensor([[10, 11, 12]]), torch.tensor([99])
    # one group per prompt, orthogonal: each claiming row is [s, 0, 0] -> log(1 + 2 e^-s)
    groups = eye[None].clone()
    one_each = math.log(1 + 2 * math.exp(-5.0))
    assert loss(groups, prompts, ids, caption, s).item() == pytest.approx(one_each, abs=1e-6)
    # a collapsed grouping: one group matching every prompt alike (and one empty) gives ln K
    collapsed = torch.stack([torch.ones(4), torch.zeros(4)])[None]
    assert loss(collapsed, prompts, ids, caption, s).item() == pytest.approx(math.log(3), abs=1e-5)
    # the caption's padding (id 99) takes no part: two real prompts left, ln 2 when collapsed
    padded = torch.tensor([[10, 11, 99]])
    assert loss(collapsed, prompts, padded, caption, s).item() == pytest.approx(math.log(2), abs=1e-5)
    # a prompt repeated is its own positive: prompts 0 and 1 share a text, so with one group for
    # axis 0 and one for axis 2 each row of text 10 is [s, s, 0] with positives {0, 1}
    same_text = torch.tensor([[10, 10, 12]])
    prompts2 = torch.stack([eye[0], eye[0], eye[2]])[None]
    groups2 = torch.stack([eye[0], eye[2]])[None]
    expected = math.log(1 + math.exp(-5.0) / 2) * 2 / 3 + math.log(1 + 2 * math.exp(-5.0)) / 3
    assert loss(groups2, prompts2, same_text, caption, s).item() == pytest.approx(expected, abs=1e-6)
    # no prompt with a rival (one real prompt): 0, with a graph
    lone = torch.tensor([[10, 99, 99]])
    assert loss(groups, prompts, lone, caption, s).item() == 0.0
    # the gradient reaches the claiming groups
    collapsed.requires_grad_(True)
    loss(collapsed, prompts, ids, caption, torch.tensor(1.0)).backward()
    assert collapsed.grad[0, 0].abs().sum() > 0 and collapsed.grad[0, 1].abs().sum() == 0
    # an image whose prompts are all caption padding beside one that counts: finite gradients
    g = torch.randn(2, 4, 8, requires_grad=True)
    p = torch.randn(2, 3, 8, requires_grad=True)
    loss(g, p, torch.tensor([[5, 5, 5], [1, 2, 5]]), torch.tensor([5, 5]), torch.tensor(10.0)).backward()
    assert torch.isfinite(g.grad).all() and torch.isfinite(p.grad).all() and g.grad[1].abs().sum() > 0
    with pytest.raises(ValueError, match="group_embeds"):
        loss(groups[:, 0], prompts, ids, caption, s)


def test_unclaimed_group_loss_values() -> None:
    eye = torch.eye(3)
    prompts = eye[:2][None]  # [1, 2, 3]: two distinct prompts along axes 0 and 1
    ids = torch.tensor([[10, 11]])
    s = 5.0
    # groups along 0, 1, 2: the first two claim the prompts, the third is equally far from both
    groups = eye[None].clone()
    assert UnclaimedGroupLoss()(groups, prompts, ids, torch.tensor(s)).item() == pytest.approx(0.0, abs=1e-6)
    # the third group along axis 0 too: it loses prompt 0 to the first group (ties go to the first)
    # and pays KL(softmax([s, 0]) || uniform), averaged over B * G = 3 groups
    groups[0, 2] = eye[0]
    p = torch.tensor([s, 0.0]).softmax(0)
    expected = (math.log(2) + (p * p.log()).sum()).item() / 3
    assert UnclaimedGroupLoss()(groups, prompts, ids, torch.tensor(s)).item() == pytest.approx(
        expected, abs=1e-6
    )
    # equal ids are one vocabulary entry: with both prompts the same text, U = 1 and nothing is left to flatten
    same = torch.tensor([[10, 10]])
    assert UnclaimedGroupLoss()(groups, eye[[0, 0]][None], same, torch.tensor(s)).item() == pytest.approx(0.0)
    g = groups.clone().requires_grad_(True)
    UnclaimedGroupLoss()(g, prompts, ids, torch.tensor(s)).backward()
    assert g.grad[0, 2].abs().sum() > 0 and g.grad[0, :2].abs().sum() == 0  # only the unclaimed group
    with pytest.raises(ValueError, match="prompt_ids"):
        UnclaimedGroupLoss()(groups, prompts, ids[:, :1], torch.tensor(s))
