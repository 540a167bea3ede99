"""Class embeddings from several names per class (synonyms; a class file's ``name: syn1, syn2``).

A class's embedding is the mean of its names' template-averaged unit embeddings, L2-normalised
again: every name counts once, as every template counts once within a name. Used for background
synonyms too (``background: sky, wall, ...``): background then is a text class like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from groupvit.zero_shot_functional import TextEncoder, build_class_embeddings

__all__ = ["synonym_embeddings"]


@torch.no_grad()
def synonym_embeddings(
    model: TextEncoder,
    tokenizer: object,
    synonyms: Sequence[Sequence[str]],
    templates: Sequence[str],
    device: torch.device | str | None = None,
) -> Tensor:
    """Tensor [K, D] of unit rows: class k is the normalised mean over its names ``synonyms[k]``.

    Args:
        model: text encoder (``encode_text``).
        tokenizer: callable ``list[str] -> LongTensor [N, L]``.
        synonyms: K non-empty lists of names (the class's name first).
        templates: T format strings with one ``{}``.
        device: where the tokens go (the model's device).
    """
    names = [name for names in synonyms for name in names]
    embeds = build_class_embeddings(model, tokenizer, names, templates, device)  # [S, D]
    owner = torch.tensor([k for k, names in enumerate(synonyms) for _ in names], device=embeds.device)
    sums = embeds.new_zeros(len(synonyms), embeds.shape[1]).index_add_(0, owner, embeds)
    return F.normalize(sums, dim=-1)
