"""Prompt tuning of a frozen GroupViT on the groups it forms (GLIP's prompt tuning, CoOp's context).

Only the prompts learn; every model weight stays as it was. Two kinds of prompt:

* ``"embedding"``: the class embeddings [K, D] themselves, initialised from the zero-shot text
  embeddings (so training starts at the zero-shot model's predictions);
* ``"context"``: CoOp's M context vectors [M, W] (``shared``) or [K, M, W] (one set per class)
  in the text tower's input, in place of the template words: ``[SOT] c_1 .. c_M name . [EOT]``,
  initialised from the token embeddings of ``context_init`` ("a photo of a"), so the prompt
  starts as the zero-shot template "a photo of a {}." exactly.

The loss works on the model's own units, the final groups: every group gets the protocol's score
row (:func:`group_log_probs`) and is trained towards the majority label of its pixels
(:func:`group_targets`), background included, each group weighted by its pixel count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from groupvit.errors import InputError
from groupvit.prompts import KINDS
from groupvit.zero_shot_functional import build_class_embeddings, group_class_affinity

__all__ = ["PromptLearner", "group_log_probs", "group_targets", "prompt_tuning_loss"]


class PromptLearner(nn.Module):
    """The learnable prompts of K classes; ``forward(model)`` gives their class embeddings [K, D].

    The model is an argument, not a sub-module, so ``parameters()`` holds the prompts only.

    Args:
        model: the frozen GroupViT the prompts are tuned for (read once here for the initial values).
        tokenizer: ``list[str] -> LongTensor [N, L]``.
        class_names: K class names.
        kind: ``"embedding"`` or ``"context"``.
        templates: templates of the zero-shot embeddings that ``"embedding"`` starts from.
        context_init: words whose token embeddings initialise the context (``"context"``; M = their
            number of tokens).
        shared_context: one context for every class (CoOp's unified context) instead of one per class.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Callable[[list[str]], Tensor],
        class_names: Sequence[str],
        kind: str = "embedding",
        templates: Sequence[str] = ("a photo of a {}.",),
        context_init: str = "a photo of a",
        shared_context: bool = True,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise InputError(f"prompt kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind, self.class_names = kind, tuple(class_names)
        device = next(model.parameters()).device
        if kind == "embedding":
            init = build_class_embeddings(model, tokenizer, self.class_names, templates, device)
            self.embeddings = nn.Parameter(init.detach().clone())  # [K, D]
            return
        num_context = len(tokenizer([context_init])[0].nonzero()) - 2  # without SOT and EOT
        if num_context < 1:
            raise InputError(f"context_init {context_init!r} has no token to start the context from")
        tokens = tokenizer([f"{context_init} {name}." for name in self.class_names]).to(device)  # [K, L]
        length = int(tokens.argmax(dim=-1).max()) + 1  # causal: columns after the last EOT do not matter
        self.register_buffer("tokens", tokens[:, :length], persistent=False)
        with torch.no_grad():
            init = model.text.token_embedding(self.tokens[:1, 1 : 1 + num_context])[0]  # [M, W]
        if not shared_context:
            init = init[None].expand(len(self.class_names), -1, -1)  # [K, M, W]
        self.context = nn.Parameter(init.detach().clone())

    def forward(self, model: nn.Module) -> Tensor:
        """Class embeddings [K, D], L2-normalised, differentiable in the prompts only."""
        if self.kind == "embedding":
            return F.normalize(self.embeddings, dim=-1)
        words = model.text.token_embedding(self.tokens)  # [K, L, W]
        num_classes, num_context = words.shape[0], self.context.shape[-2]
        context = self.context.expand(num_classes, -1, -1) if self.context.ndim == 2 else self.context
        x = torch.cat([words[:, :1], context, words[:, 1 + num_context :]], dim=1)
        features = model.text.encode_embeddings(x)  # [K, L, W]
        pooled = features[torch.arange(num_classes, device=x.device), self.tokens.argmax(dim=-1)]
        return F.normalize(model.text_projector(pooled), dim=-1)

    def learned_tensors(self) -> dict[str, Tensor]:
        """The learned tensors by name (what the prompt file keeps beside the class embeddings)."""
        return {self.kind: (self.embeddings if self.kind == "embedding" else self.context).detach().cpu()}


def group_targets(
    group_ids: Tensor, labels: Tensor, num_groups: int, num_labels: int, ignore_index: int = 255
) -> tuple[Tensor, Tensor]:
    """Majority label of every final group's pixels, and how many labelled pixels it has.

    Args:
        group_ids: LongTensor [B, H, W], the final group of every pixel (in [0, G)).
        labels: LongTensor [B, H, W], label map (0 = background, i = class i; ``ignore_index`` skipped).
        num_groups: G.
        num_labels: C = K + 1 label values.

    Returns:
        ``(targets [B, G] long, weights [B, G] float)``: a group without labelled pixels has weight 0.
    """
    if group_ids.shape != labels.shape:
        raise ValueError(
            f"group ids {tuple(group_ids.shape)} and labels {tuple(labels.shape)} differ in shape"
        )
    batch = labels.shape[0]
    valid = labels != ignore_index
    bad = labels[valid & ((labels < 0) | (labels >= num_labels))]
    if bad.numel():
        raise InputError(
            f"label value {int(bad[0])} outside 0..{num_labels - 1} (and {ignore_index} = ignore)"
        )
    cells = (group_ids * num_labels + labels.clamp(0, num_labels - 1)).flatten(1)  # [B, H*W]
    counts = torch.zeros(batch, num_groups * num_labels, device=labels.device)
    counts.scatter_add_(1, cells, valid.flatten(1).float())
    counts = counts.view(batch, num_groups, num_labels)
    return counts.argmax(dim=-1), counts.sum(dim=-1)


def group_log_probs(
    group_embeds: Tensor,
    image_embeds: Tensor,
    class_embeds: Tensor,
    logit_scale: Tensor | float,
    bg_thresh: float = 0.95,
    top_k: int = 5,
    eps: float = 1e-8,
) -> Tensor:
    """Log-distribution [B, G, K + 1] of each group over background and the K classes.

    The zero-shot protocol labels a group with the argmax of its row: background when its best
    foreground affinity ``max_k (B * A)_k`` is below ``t = min(bg_thresh, max of the image's B * A)``,
    else the best class. Normalising ``[t, (B * A)_1 .. (B * A)_K]`` gives a distribution with the
    same argmax that is differentiable in the class embeddings (including through ``t``), so the
    loss trains exactly the decision the protocol makes. Classes outside the image-level top-k
    are 0 there (``eps`` keeps their log finite).

    Args:
        group_embeds: [B, G, D] and image_embeds: [B, D], L2-normalised.
        class_embeds: [K, D] L2-normalised.
        logit_scale: the model's clamped scale.
    """
    fg = group_class_affinity(group_embeds, image_embeds, class_embeds, logit_scale, top_k)  # [B, G, K]
    thresh = fg.flatten(1).amax(dim=1).clamp(max=bg_thresh)  # [B]
    rows = torch.cat([thresh[:, None, None].expand(-1, fg.shape[1], 1), fg], dim=-1) + eps
    return rows.log() - rows.sum(dim=-1, keepdim=True).log()


def prompt_tuning_loss(log_probs: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
    """Cross-entropy of every group's row with its majority label, weighted by its pixel count.

    ``log_probs`` [B, G, C], ``targets`` [B, G], ``weights`` [B, G] -> scalar: the mean over the
    labelled pixels of the log-probability of their group's label.
    """
    nll = -log_probs.gather(-1, targets[..., None])[..., 0]  # [B, G]
    return (weights * nll).sum() / weights.sum().clamp(min=1.0)
