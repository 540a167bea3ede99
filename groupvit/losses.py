"""Image-text contrastive losses, gathered across processes with gradients when distributed.

Both losses run unchanged in a single process (no process group needed); with
``torch.distributed`` initialised and ``world_size > 1`` every rank contrasts its local samples
against the embeddings of the whole global batch, and labels are offset by the rank.

Optionally (``text_ids`` / ``prompt_ids`` from :func:`text_ids`) identical texts in the global
batch count as positives of every image that has them, instead of as negatives. With web captions
exact duplicates are rare and this changes little; with a small vocabulary (the synthetic scenes:
8 nouns, so "a photo of a star." recurs dozens of times in a batch) the paper's targets would ask
each image to reject the very prompts that describe it, and the multi-label loss stalls.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from groupvit.errors import InputError
from groupvit.refine.pamr import pamr_matrix


def rank_and_world_size() -> tuple[int, int]:
    """(rank, world_size) of the default process group, or (0, 1) when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward hands on a contiguous gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` [N, ...] from every rank along dim 0 -> [world_size * N, ...].

    Uses ``torch.distributed.nn.functional.all_gather``, which back-propagates into every rank's
    input (the plain ``all_gather`` would cut the gradient of the other ranks' samples). Returns
    ``x`` itself without a process group or with a single process.

    The gradient reaching the gather is made contiguous first: its backward runs a collective on
    slices of that gradient, and with gloo a strided slice (the gradient of an ``einsum`` operand,
    say) sums the wrong elements; measured wrong by up to 0.5 on a 0.7-sized gradient.
    """
    _, world_size = rank_and_world_size()
    if world_size == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    # Deprecated in recent torch in favour of a private API, but still the public autograd-aware gather.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _ContiguousGrad.apply(torch.cat(all_gather(x), dim=0))


@torch.no_grad()
def text_ids(tokens: torch.Tensor) -> torch.Tensor:
    """Token rows [..., L] -> int64 ids [...]: equal rows get equal ids, on every rank alike.

    A fixed random 64-bit linear hash of the token ids (int64 arithmetic wraps), so no tokens
    have to be gathered across processes; two different rows collide with probability ~2^-64.
    """
    gen = torch.Generator().manual_seed(0x6A09E667)
    weights = torch.randint(1, 2**62, (tokens.shape[-1],), generator=gen, dtype=torch.int64)
    return (tokens.long() * weights.to(tokens.device)).sum(dim=-1)


@torch.no_grad()
def gather_ids(ids: torch.Tensor) -> torch.Tensor:
    """Concatenate integer ids [N, ...] from every rank along dim 0 (no gradient)."""
    _, world_size = rank_and_world_size()
    if world_size == 1:
        return ids
    out = [torch.empty_like(ids) for _ in range(world_size)]
    dist.all_gather(out, ids.contiguous())
    return torch.cat(out, dim=0)


def soft_cross_entropy(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_j t_j log softmax(logits)_j, t = positives normalised per row.

    logits [N, M] float, positives [N, M] bool (at least one per row) -> [].
    """
    target = positives.float()
    target = target / target.sum(dim=-1, keepdim=True)
    return -(target * logits.log_softmax(dim=-1)).sum(dim=-1).mean()


class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE between images and their captions over the (global) batch."""

    def forward(
        self,
        image_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        logit_scale: torch.Tensor,
        text_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """image_embeds [B, D], text_embeds [B, D] (L2-normalised here), logit_scale [] -> loss [].

        text_ids [B] (optional, from :func:`text_ids`): captions with equal ids are positives of
        each other's images.
        """
        rank, _ = rank_and_world_size()
        image_embeds = F.normalize(image_embeds.float(), dim=-1)
        text_embeds = F.normalize(text_embeds.float(), dim=-1)
        all_images, all_texts = gather_with_grad(image_embeds), gather_with_grad(text_embeds)
        labels = (
            torch.arange(image_embeds.shape[0], device=image_embeds.device) + rank * image_embeds.shape[0]
        )
        logits_per_image = logit_scale * image_embeds @ all_texts.t()  # (B, W*B)
        logits_per_text = logit_scale * text_embeds @ all_images.t()  # (B, W*B)
        if text_ids is not None:
            same = text_ids[:, None] == gather_ids(text_ids)[None, :]  # (B, W*B), own pair included
            return 0.5 * (
                soft_cross_entropy(logits_per_image, same) + soft_cross_entropy(logits_per_text, same)
            )
        return 0.5 * (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels))


def image_text_similarity(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of L2-normalised embeddings: images [N, D] or groups [N, G, D], texts [M, D].

    Returns [N, M]; with groups, an image's similarity to a text is its best group's (max over G).
    """
    if image_embeds.ndim == 2:
        return image_embeds @ text_embeds.t()
    return torch.einsum("ngd,md->ngm", image_embeds, text_embeds).amax(dim=1)


class MultiLabelContrastiveLoss(nn.Module):
    """Images vs. the noun prompts of their captions (each image has K positive prompts).

    Image side: soft-target cross-entropy over all B*K gathered prompts, target 1/K on the image's own
    prompts (chance level ln(B*K)). Prompt side: cross-entropy over the B gathered images with the
    prompt's image as the single positive (chance level ln(B)). The loss is the mean of both sides.

    The image side may be the final groups [B, G, D] instead of the pooled embedding [B, D]; an
    image then scores a prompt by its best-matching group (multiple-instance matching, not in the
    paper), so each noun must be carried by some group on its own, as zero-shot segmentation
    scores groups.
    """

    def forward(
        self,
        image_embeds: torch.Tensor,
        prompt_embeds: torch.Tensor,
        logit_scale: torch.Tensor,
        prompt_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """image_embeds [B, D] or [B, G, D], prompt_embeds [B, K, D] (L2-normalised here), scale [] -> [].

        prompt_ids [B, K] (optional, from :func:`text_ids`): every gathered prompt equal to one of
        an image's own prompts is a positive of that image, and vice versa.
        """
        if prompt_embeds.ndim != 3 or prompt_embeds.shape[0] != image_embeds.shape[0]:
            raise ValueError(
                f"expected prompt_embeds [B, K, D] with B = {image_embeds.shape[0]}, got {tuple(prompt_embeds.shape)}"
            )
        rank, _ = rank_and_world_size()
        B, K, D = prompt_embeds.shape
        device = image_embeds.device
        image_embeds = F.normalize(image_embeds.float(), dim=-1)
        prompts = F.normalize(prompt_embeds.float(), dim=-1).reshape(B * K, D)
        all_images, all_prompts = gather_with_grad(image_embeds), gather_with_grad(prompts)

        # image -> prompts: own prompts sit at columns (rank * B + b) * K + k
        logits_per_image = logit_scale * image_text_similarity(image_embeds, all_prompts)  # (B, W*B*K)
        logits_per_prompt = logit_scale * image_text_similarity(all_images, prompts).t()  # (B*K, W*B)
        if prompt_ids is not None:
            all_ids = gather_ids(prompt_ids)  # (W*B, K)
            # image b vs prompt j: j's text is one of b's prompts
            per_image = (prompt_ids[:, :, None] == all_ids.reshape(1, 1, -1)).any(dim=1)  # (B, W*B*K)
            # prompt (b, k) vs image i: one of i's prompts has that text
            per_prompt = (prompt_ids.reshape(-1, 1, 1) == all_ids[None]).any(dim=-1)  # (B*K, W*B)
            return 0.5 * (
                soft_cross_entropy(logits_per_image, per_image)
                + soft_cross_entropy(logits_per_prompt, per_prompt)
            )
        own = (torch.arange(B, device=device) + rank * B)[:, None] * K + torch.arange(K, device=device)
        targets = torch.zeros_like(logits_per_image).scatter_(1, own, 1.0 / K)
        loss_image = -(targets * logits_per_image.log_softmax(dim=-1)).sum(dim=-1).mean()

        # prompt -> images: prompt (b, k) has image rank * B + b as its positive
        labels = (torch.arange(B, device=device) + rank * B).repeat_interleave(K)
        loss_prompt = F.cross_entropy(logits_per_prompt, labels)
        return 0.5 * (loss_image + loss_prompt)


def own_prompt_logits(
    group_embeds: torch.Tensor, prompt_embeds: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Every image's groups against its own prompts: ``s * cos`` [B, G, K] in fp32 from
    group_embeds [B, G, D] and prompt_embeds [B, K, D] (L2-normalised here)."""
    groups = F.normalize(group_embeds.float(), dim=-1)
    prompts = F.normalize(prompt_embeds.float(), dim=-1)
    return logit_scale * torch.einsum("bgd,bkd->bgk", groups, prompts)


class NounGroupLoss(nn.Module):
    """Each of an image's prompts should be claimed by one of its groups, not by several.

    For image b and its prompt k, ``p_k = softmax_G(s * g_b @ t_bk)`` says which group matches the
    prompt; the loss is ``-mean log max_G p_k`` (0 when one group wins outright). Not in the paper:
    with the pooled image-text losses alone, background groups take on the image's classes from
    self-attention and zero-shot segmentation labels them with the objects' class. Per image, no
    gathering across processes. Chance level (all groups alike) is ln G.
    """

    def forward(
        self, group_embeds: torch.Tensor, prompt_embeds: torch.Tensor, logit_scale: torch.Tensor
    ) -> torch.Tensor:
        """group_embeds [B, G, D], prompt_embeds [B, K, D] (L2-normalised here), scale [] -> loss []."""
        if (
            group_embeds.ndim != 3
            or prompt_embeds.ndim != 3
            or group_embeds.shape[0] != prompt_embeds.shape[0]
        ):
            raise ValueError(
                f"expected group_embeds [B, G, D] and prompt_embeds [B, K, D], "
                f"got {tuple(group_embeds.shape)} and {tuple(prompt_embeds.shape)}"
            )
        logits = own_prompt_logits(group_embeds, prompt_embeds, logit_scale)  # [B, G, K]
        return -logits.log_softmax(dim=1).amax(dim=1).mean()


class UnclaimedGroupLoss(nn.Module):
    """Groups that claim none of their image's prompts should resemble no prompt at all.

    A group claims prompt k of its image when it is the image's best group for it (argmax over G,
    no gradient). Every other group g gets ``KL(softmax_U(s * g @ v) || uniform)`` over the
    vocabulary v of the distinct prompts in the global batch (gathered, equal texts by id), summed
    over those groups and divided by B * G. Not in the paper: zero-shot segmentation labels a group
    with its most likely class and calls it background only when that probability is low, so
    background groups must be equally far from every class name; self-attention otherwise gives
    them the image's classes.
    """

    def forward(
        self,
        group_embeds: torch.Tensor,
        prompt_embeds: torch.Tensor,
        prompt_ids: torch.Tensor,
        logit_scale: torch.Tensor,
    ) -> torch.Tensor:
        """group_embeds [B, G, D], prompt_embeds [B, K, D] (L2-normalised here), prompt_ids [B, K]
        (from :func:`text_ids`), logit_scale [] -> loss []."""
        if group_embeds.ndim != 3 or prompt_embeds.ndim != 3 or prompt_ids.shape != prompt_embeds.shape[:2]:
            raise ValueError(
                f"expected group_embeds [B, G, D], prompt_embeds [B, K, D] and prompt_ids [B, K], got "
                f"{tuple(group_embeds.shape)}, {tuple(prompt_embeds.shape)} and {tuple(prompt_ids.shape)}"
            )
        rank, _ = rank_and_world_size()
        B, G, _ = group_embeds.shape
        K = prompt_embeds.shape[1]
        groups = F.normalize(group_embeds.float(), dim=-1)
        prompts = F.normalize(prompt_embeds.float(), dim=-1).flatten(0, 1)  # [B*K, D]
        all_prompts, all_ids = gather_with_grad(prompts), gather_ids(prompt_ids).flatten()  # [W*B*K]
        # vocabulary: the first occurrence of every distinct text; column of each gathered prompt
        _, column = torch.unique(all_ids, return_inverse=True)
        positions = torch.arange(all_ids.numel(), device=all_ids.device)
        first = torch.full_like(column[: int(column.max()) + 1], all_ids.numel())
        first = first.scatter_reduce(0, column, positions, reduce="amin")
        logits = logit_scale * groups @ all_prompts[first].t()  # [B, G, U]
        with torch.no_grad():
            own = column[rank * B * K : (rank + 1) * B * K].view(B, 1, K).expand(B, G, K)
            claimed = torch.zeros(B, G, dtype=torch.bool, device=groups.device)
            claimed.scatter_(1, logits.gather(2, own).argmax(dim=1), True)  # best group of each prompt
        log_p = logits.log_softmax(dim=-1)
        kl = math.log(logits.shape[-1]) + (log_p.exp() * log_p).sum(dim=-1)  # [B, G]
        return (kl * (~claimed).float()).sum() / (B * G)


class ExclusiveGroupLoss(nn.Module):
    """The group that claims a prompt should prefer it to its image's other prompts.

    For image b, ``L = s * g_b @ t_b`` [G, K] scores its groups against its prompts; prompt k is
    claimed by its best group ``c = argmax_G L[:, k]`` (no gradient), and the loss is the cross
    entropy of that group's row over the image's prompts, ``-log softmax_K(L[c])[k]`` (prompts of
    k's text are positives too). One group that matches every prompt alike (a collapsed grouping)
    scores ``ln K``; groups that each match one prompt score 0, so unlike :class:`NounGroupLoss`
    (met outright by one group owning the whole image) this loss asks for one group per named thing.
    Prompts equal to the caption (its padding when it has fewer nouns) take no part; rows with no
    other prompt to prefer are left out of the mean. Per image, no gathering across processes. Not
    in the paper.
    """

    def forward(
        self,
        group_embeds: torch.Tensor,
        prompt_embeds: torch.Tensor,
        prompt_ids: torch.Tensor,
        caption_ids: torch.Tensor,
        logit_scale: torch.Tensor,
    ) -> torch.Tensor:
        """group_embeds [B, G, D], prompt_embeds [B, K, D] (L2-normalised here), prompt_ids [B, K] and
        caption_ids [B] (from :func:`text_ids`), logit_scale [] -> loss [] (0 when no row counts)."""
        if group_embeds.ndim != 3 or prompt_embeds.ndim != 3 or prompt_ids.shape != prompt_embeds.shape[:2]:
            raise ValueError(
                f"expected group_embeds [B, G, D], prompt_embeds [B, K, D] and prompt_ids [B, K], got "
                f"{tuple(group_embeds.shape)}, {tuple(prompt_embeds.shape)} and {tuple(prompt_ids.shape)}"
            )
        logits = own_prompt_logits(group_embeds, prompt_embeds, logit_scale)  # [B, G, K]
        claim = logits.detach().argmax(dim=1)  # [B, K]: the best group of every prompt
        rows = logits.gather(1, claim[:, :, None].expand(-1, -1, logits.shape[-1]))  # [B, K, K']
        valid = prompt_ids != caption_ids[:, None]  # [B, K]: real prompts, not caption padding
        same = prompt_ids[:, :, None] == prompt_ids[:, None, :]  # [B, K, K']
        rows = rows.masked_fill(~valid[:, None, :], float("-inf"))
        counted = valid & (valid[:, None, :] & ~same).any(dim=-1)  # a real prompt with a rival
        if not counted.any():
            return logits.sum() * 0.0
        log_all = rows.logsumexp(dim=-1)
        log_pos = rows.masked_fill(~same, float("-inf")).logsumexp(dim=-1)
        return (log_all - log_pos)[counted].mean()


class GroupBalanceLoss(nn.Module):
    """Confident and balanced group assignments: an optional regulariser against group collapse.

    Per grouping stage, with the soft assignment A [B, G, N] (softmax over groups):
    ``KL(u || uniform) + mean_n H(A[:, :, n])``, where u = A averaged over images and tokens is the
    usage of each group. The entropy term makes every token choose one group clearly (the hard
    one-hot assignment then follows the soft one); the KL term keeps the batch spreading its tokens
    over all groups. Both are 0 at one-hot, evenly used assignments. Not in the paper: measured on
    the synthetic scenes, the paper's losses alone let every token fall into one group (stage usage
    [1, 1] after 1000 iterations) while the image-level embedding stayed right.
    """

    def forward(self, assignments: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> torch.Tensor:
        """assignments: per stage [B, G, N] soft (rows over G sum to 1) -> loss []."""
        total = assignments[0].new_zeros((), dtype=torch.float32)
        for attn in assignments:
            attn = attn.float()
            usage = attn.mean(dim=(0, 2))  # [G]
            kl = (usage * (usage * usage.numel()).clamp_min(1e-12).log()).sum()
            entropy = -(attn * attn.clamp_min(1e-12).log()).sum(dim=1).mean()
            total = total + kl + entropy
        return total


class GroupUsageFloorLoss(nn.Module):
    """At least ``min_groups`` groups per image: a floor under each image's group-usage entropy.

    With P the product of the stages' soft assignments [B, G, N], image b uses its groups in the
    shares ``u_b = mean_n P[b, :, n]``; the loss is ``mean_b relu(ln(min_groups) - H(u_b))``, 0 for
    any image whose patches spread over the equivalent of ``min_groups`` equal groups or more, and
    ``ln(min_groups)`` for an image that one group owns. It takes away the constant grouping as a
    fixed point of :class:`AffinityGroupLoss` (with ``target="hard"`` the runs fell to one group per
    image by iteration 450, docs/shapes.md) and does nothing above the floor. Per image, unlike the
    batch-level usage of :class:`GroupBalanceLoss`. Not in the paper.

    ``usage="hard"`` counts each patch in its best group (the one-hot of P's argmax, as zero-shot
    segmentation assigns pixels) with the soft map's gradient (straight through: ``hard -
    P.detach() + P``). Why: measured (docs/shapes.md, DFs1), the soft floor was met by a soft map
    spread over the groups (usage entropy 1.30 > ln 3) while 1.88 hard groups owned the pixels. The
    hard shares are multiples of 1/N, and the entropy's log is taken at no less than 1/N, so the
    entropy's gradient towards an unused group is ``ln N``, not unbounded.
    """

    def __init__(self, min_groups: float = 3.0, usage: str = "soft") -> None:
        super().__init__()
        if min_groups < 1:
            raise InputError(f"usage_floor_groups must be >= 1, got {min_groups}")
        if usage not in ("soft", "hard"):
            raise InputError(f"usage_floor_target must be 'soft' or 'hard', got {usage!r}")
        self.log_min = math.log(min_groups)
        self.usage = usage

    def forward(self, assignments: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """assignments per stage [B, G_s, N_s] (rows over G sum to 1) -> loss []."""
        groups = assignment_product(tuple(a.float() for a in assignments))  # [B, G, N]
        floor = 1e-12
        if self.usage == "hard":
            hard = F.one_hot(groups.argmax(dim=1), groups.shape[1]).transpose(1, 2).to(groups.dtype)
            groups = hard - groups.detach() + groups
            floor = 1.0 / groups.shape[-1]
        usage = groups.mean(dim=-1)  # [B, G]
        entropy = -(usage * usage.clamp_min(floor).log()).sum(dim=-1)  # [B]
        return (self.log_min - entropy).clamp_min(0).mean()


def assignment_product(assignments: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Per-stage soft assignments [B, G_s, N_s] (N_{s+1} = G_s) -> final groups over patches [B, G, N_1].

    Each stage's columns sum to 1 (a token's share in every group), so the product's columns do too.
    """
    product = assignments[0]
    for stage in assignments[1:]:
        product = stage @ product
    return product


def phrase_patch_shares(
    label_map: torch.Tensor, phrase_labels: torch.Tensor, grid: tuple[int, int]
) -> torch.Tensor:
    """Share of each patch inside each phrase: label_map [B, H, W], phrase_labels [B, P] -> [B, P, h*w].

    A phrase's pixels are those whose label-map value is its label; padding phrases (label < 0) have
    none. Ignored pixels (255) count neither inside nor outside: the share is over a patch's valid pixels.
    """
    labels = phrase_labels[:, :, None, None]
    inside = ((label_map[:, None] == labels) & (labels >= 0)).float()
    valid = (label_map != 255)[:, None].float()
    inside, valid = F.adaptive_avg_pool2d(inside, grid), F.adaptive_avg_pool2d(valid, grid)
    return (inside / valid.clamp(min=1e-6)).flatten(2)


def group_phrase_targets(
    assignments: tuple[torch.Tensor, ...],
    label_map: torch.Tensor,
    phrase_labels: torch.Tensor,
    grid: tuple[int, int],
    min_share: float = 0.5,
) -> torch.Tensor:
    """GLIP's region-phrase targets for groups: [B, G, P] in {0, 1}, 1 where more than ``min_share``
    of the group's soft pixels (the assignment product) lie inside the phrase's mask.

    assignments: per-stage soft assignments; label_map [B, H, W]; phrase_labels [B, P] (-1: padding);
    grid: the patch grid (h, w) of the first stage.
    """
    with torch.no_grad():
        groups = assignment_product(assignments).float()  # (B, G, N)
        shares = phrase_patch_shares(label_map, phrase_labels, grid)  # (B, P, N)
        inside = groups @ shares.transpose(1, 2) / groups.sum(dim=-1, keepdim=True).clamp(min=1e-6)
        return (inside > min_share).float()


class GroupPhraseAlignmentLoss(nn.Module):
    """GLIP's alignment loss between the final groups and the phrases of each image's caption.

    Every group is scored against every phrase of its own caption with its own sigmoid,
    ``logit = scale * (cos - threshold)``: the threshold is the cosine at which a group is
    even odds for a phrase, grounding's ``min_similarity`` gate. Binary cross-entropy (mean over
    the image's group-phrase pairs) or sigmoid focal loss (alpha 0.25, gamma 2, summed and divided
    by the positives, as in GLIP / RetinaNet).

    Args:
        kind: ``"bce"`` or ``"focal"``.
        scale: the sigmoid's inverse temperature on the cosine.
        threshold: cosine at which a pair scores 0.5.
    """

    def __init__(self, kind: str = "bce", scale: float = 10.0, threshold: float = 0.4) -> None:
        super().__init__()
        if kind not in ("bce", "focal"):
            raise ValueError(f"kind must be 'bce' or 'focal', got {kind!r}")
        self.kind, self.scale, self.threshold = kind, float(scale), float(threshold)

    def forward(
        self,
        group_embeds: torch.Tensor,
        phrase_embeds: torch.Tensor,
        targets: torch.Tensor,
        phrase_valid: torch.Tensor,
    ) -> torch.Tensor:
        """group_embeds [B, G, D], phrase_embeds [B, P, D] (L2-normalised), targets [B, G, P] in
        {0, 1}, phrase_valid [B, P] bool (False: padding) -> loss [] (0 without a valid phrase)."""
        logits = self.scale * (group_embeds @ phrase_embeds.transpose(1, 2) - self.threshold)  # (B, G, P)
        return self._reduce(logits, targets, phrase_valid)

    def _reduce(
        self, logits: torch.Tensor, targets: torch.Tensor, phrase_valid: torch.Tensor
    ) -> torch.Tensor:
        """logits, targets [B, X, P] (X: groups or patches), phrase_valid [B, P] -> the BCE mean or
        the focal sum over the positives, on the valid phrases' entries (0 without any)."""
        weight = phrase_valid[:, None, :].expand_as(logits).float()
        if weight.sum() == 0:
            return logits.sum() * 0.0
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        if self.kind == "bce":
            return (bce * weight).sum() / weight.sum()
        p = logits.sigmoid()
        p_t = p * targets + (1 - p) * (1 - targets)
        alpha_t = 0.25 * targets + 0.75 * (1 - targets)
        focal = alpha_t * (1 - p_t) ** 2 * bce
        return (focal * weight).sum() / (targets * weight).sum().clamp(min=1.0)


class PatchPhraseAlignmentLoss(GroupPhraseAlignmentLoss):
    """The group-phrase alignment scored at every patch instead of every group.

    A patch's logit for a phrase is its groups' logits weighted by its soft assignment (the
    assignment product), and its target is 1 where more than ``min_share`` of the patch lies inside
    the phrase's mask. The targets do not depend on how the model groups, so a grouping that
    merges everything (and is then no group's positive) does not lower the loss; with group targets
    it does (docs/fusion.md: the fused groups collapsed to one per image under them).

    Args: those of :class:`GroupPhraseAlignmentLoss`, and ``min_share``.
    """

    def __init__(
        self, kind: str = "bce", scale: float = 10.0, threshold: float = 0.4, min_share: float = 0.5
    ):
        super().__init__(kind, scale, threshold)
        self.min_share = float(min_share)

    def forward(
        self,
        group_embeds: torch.Tensor,
        phrase_embeds: torch.Tensor,
        groups: torch.Tensor,
        shares: torch.Tensor,
        phrase_valid: torch.Tensor,
    ) -> torch.Tensor:
        """group_embeds [B, G, D], phrase_embeds [B, P, D] (L2-normalised), groups [B, G, N] (the
        assignment product: each patch's share in each group), shares [B, P, N] (each patch's share
        inside each phrase, :func:`phrase_patch_shares`), phrase_valid [B, P] -> loss []."""
        group_logits = self.scale * (
            group_embeds @ phrase_embeds.transpose(1, 2) - self.threshold
        )  # (B, G, P)
        logits = groups.transpose(1, 2) @ group_logits  # (B, N, P)
        targets = (shares.transpose(1, 2) > self.min_share).float()
        return self._reduce(logits, targets, phrase_valid)


class AffinityGroupLoss(nn.Module):
    """Groups that follow the image's colour edges: PAMR's propagation as a training target.

    The zero-shot map gains most from PAMR (``groupvit.refine.pamr``) where the groups already hold
    objects; this loss asks the grouping itself to be PAMR's fixed point, so that the groups (and
    the features they pool) stop at the edges PAMR would move them to. With P the product of the
    stages' soft assignments [B, G, N] on the h x w patch grid and the image average-pooled to that
    grid (one colour per patch):

    * T = ``iterations`` PAMR steps of P on the pooled image, with no gradient (a target); with
      ``target="hard"`` the steps start from the one-hot of each patch's best group instead of P;
    * loss = mean over images and patches of KL(T[:, :, n] || P[:, :, n]).

    PAMR's affinities are convex weights, so T's columns sum to 1 as P's do; the loss is 0 exactly
    when propagation along the colours leaves the grouping unchanged. A grouping constant over the
    image is a fixed point too: measured on the shape scenes (docs/shapes.md), the loss drives the
    groups down to 3-4 per image and, on some seeds, to one. On the patch grid, not the pixels: the
    propagation is a [N, N] matrix product
    per step (``pamr_matrix``), 0.18 s per batch of 128 on one core where PAMR over the 64-px pixels
    took 10 s.

    Why ``"hard"``: the forward pools with the hard (one-hot) assignment, and soft assignments
    spread evenly over the groups are a fixed point too, one that leaves the hard grouping free.
    Measured (docs/shapes.md): a soft-target run ended with every patch's soft assignment uniform
    over the 32 groups (entropy ln 32, loss 0) while its hard groups crossed the shapes. Propagating
    the hard grouping instead asks the soft assignment to follow where the image's edges move the
    hard groups; a uniform soft assignment is then far from the target, not at it.
    """

    def __init__(
        self, iterations: int = 10, dilations: tuple[int, ...] = (1, 2, 3, 6), target: str = "soft"
    ) -> None:
        """dilations: PAMR's neighbour rings in patches (the test-time refinement's 1-24 px at
        4-px patches reach 6 patches); target: ``"soft"`` (propagate P) or ``"hard"`` (propagate
        the one-hot of P's best group per patch)."""
        super().__init__()
        if iterations < 1 or not dilations or min(dilations) < 1:
            raise InputError(
                f"affinity_iterations must be >= 1 and affinity_dilations >= 1, got {iterations} and {dilations}"
            )
        if target not in ("soft", "hard"):
            raise InputError(f"affinity_target must be 'soft' or 'hard', got {target!r}")
        self.iterations = iterations
        self.dilations = tuple(dilations)
        self.target = target

    def forward(self, images: torch.Tensor, assignments: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """images [B, 3, H, W] (any per-channel affine scaling), assignments per stage [B, G_s, N_s]
        (rows over G sum to 1; N_1 = h * w with h / w = H / W) -> loss []."""
        groups = assignment_product(tuple(a.float() for a in assignments))  # [B, G, N]
        num_patches = groups.shape[-1]
        height, width = images.shape[-2:]
        h = max(1, round(math.sqrt(num_patches * height / width)))
        w = num_patches // h
        if h * w != num_patches:
            raise ValueError(f"{num_patches} patches do not tile a {height} x {width} image")
        with torch.no_grad():
            step = pamr_matrix(F.adaptive_avg_pool2d(images.float(), (h, w)), self.dilations)
            target = groups
            if self.target == "hard":
                target = F.one_hot(groups.argmax(dim=1), groups.shape[1]).transpose(1, 2).to(groups.dtype)
            for _ in range(self.iterations):
                target = target @ step.transpose(1, 2)
        log_p = groups.clamp_min(1e-8).log()
        log_t = target.clamp_min(1e-8).log()
        return (target * (log_t - log_p)).sum(dim=1).mean()
