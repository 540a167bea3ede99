"""Image-text contrastive losses, gathered across processes with gradients when distributed.

Both losses run unchanged in a single process (no process group needed); with
``torch.distributed`` initialised and ``world_size > 1`` every rank contrasts its local samples
against the embeddings of the whole global batch, and labels are offset by the rank.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def rank_and_world_size() -> tuple[int, int]:
    """(rank, world_size) of the default process group, or (0, 1) when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` [N, ...] from every rank along dim 0 -> [world_size * N, ...].

    Uses ``torch.distributed.nn.functional.all_gather``, which back-propagates into every rank's
    input (the plain ``all_gather`` would cut the gradient of the other ranks' samples). Returns
    ``x`` itself without a process group or with a single process.
    """
    _, world_size = rank_and_world_size()
    if world_size == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    # Deprecated in recent torch in favour of a private API, but still the public autograd-aware gather.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(x), dim=0)


class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE between images and their captions over the (global) batch."""

    def forward(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor
    ) -> torch.Tensor:
        """image_embeds [B, D], text_embeds [B, D] (L2-normalised here), logit_scale [] -> loss []."""
        rank, _ = rank_and_world_size()
        image_embeds = F.normalize(image_embeds.float(), dim=-1)
        text_embeds = F.normalize(text_embeds.float(), dim=-1)
        all_images, all_texts = gather_with_grad(image_embeds), gather_with_grad(text_embeds)
        labels = (
            torch.arange(image_embeds.shape[0], device=image_embeds.device) + rank * image_embeds.shape[0]
        )
        logits_per_image = logit_scale * image_embeds @ all_texts.t()  # (B, W*B)
        logits_per_text = logit_scale * text_embeds @ all_images.t()  # (B, W*B)
        return 0.5 * (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels))


class MultiLabelContrastiveLoss(nn.Module):
    """Images vs. the noun prompts of their captions (each image has K positive prompts).

    Image side: soft-target cross-entropy over all B*K gathered prompts, target 1/K on the image's own
    prompts (chance level ln(B*K)). Prompt side: cross-entropy over the B gathered images with the
    prompt's image as the single positive (chance level ln(B)). The loss is the mean of both sides.
    """

    def forward(
        self, image_embeds: torch.Tensor, prompt_embeds: torch.Tensor, logit_scale: torch.Tensor
    ) -> torch.Tensor:
        """image_embeds [B, D], prompt_embeds [B, K, D] (both L2-normalised here), logit_scale [] -> []."""
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
        logits_per_image = logit_scale * image_embeds @ all_prompts.t()  # (B, W*B*K)
        own = (torch.arange(B, device=device) + rank * B)[:, None] * K + torch.arange(K, device=device)
        targets = torch.zeros_like(logits_per_image).scatter_(1, own, 1.0 / K)
        loss_image = -(targets * logits_per_image.log_softmax(dim=-1)).sum(dim=-1).mean()

        # prompt -> images: prompt (b, k) has image rank * B + b as its positive
        logits_per_prompt = logit_scale * prompts @ all_images.t()  # (B*K, W*B)
        labels = (torch.arange(B, device=device) + rank * B).repeat_interleave(K)
        loss_prompt = F.cross_entropy(logits_per_prompt, labels)
        return 0.5 * (loss_image + loss_prompt)
