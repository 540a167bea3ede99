"""CLIP byte-pair-encoding tokenizer (open_clip's vocabulary) with a fixed context length.

The text tower pools at the end-of-text token, found as the argmax of the token ids
(``eot`` = 49407 is the largest id in the vocabulary), so every row must keep its
``eot`` even when a long caption is truncated.
"""

from collections.abc import Sequence
from functools import lru_cache

import torch
from open_clip.tokenizer import SimpleTokenizer

__all__ = ["Tokenizer"]


@lru_cache(maxsize=1)
def _bpe() -> SimpleTokenizer:
    # One shared BPE instance: it holds the 49k-entry vocabulary and a merge cache.
    return SimpleTokenizer()


class Tokenizer:
    """Callable CLIP tokenizer: ``str | Sequence[str]`` -> LongTensor [B, context_length].

    Each row is ``[sot, bpe ids..., eot, 0, 0, ...]``. Text is cleaned as in CLIP
    (ftfy, HTML unescape, whitespace collapse, lower case). Captions longer than
    ``context_length - 2`` BPE tokens are cut and the last slot is set to ``eot``.

    Args:
        context_length: number of token slots per row (77 for CLIP and GroupViT).
    """

    def __init__(self, context_length: int = 77) -> None:
        if context_length < 2:
            raise ValueError(f"context_length must be >= 2 (room for sot and eot), got {context_length}")
        self.context_length = context_length
        self._bpe = _bpe()
        self.vocab_size: int = self._bpe.vocab_size
        self.sot_token_id: int = self._bpe.sot_token_id
        self.eot_token_id: int = self._bpe.eot_token_id

    def encode(self, text: str) -> list[int]:
        """BPE ids of one cleaned string, without sot/eot and without truncation."""
        return self._bpe.encode(text)

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Tokenize one string or a sequence of strings.

        Args:
            texts: a string (gives B = 1) or a sequence of B strings.

        Returns:
            LongTensor [B, context_length], zero-padded.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("Tokenizer expects a str or a sequence of str")
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.sot_token_id, *self.encode(text), self.eot_token_id]
            if len(ids) > self.context_length:
                # Keep eot last: the text tower pools at argmax(token id) == eot.
                ids = ids[: self.context_length - 1] + [self.eot_token_id]
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def __repr__(self) -> str:
        return f"Tokenizer(context_length={self.context_length}, vocab_size={self.vocab_size})"
