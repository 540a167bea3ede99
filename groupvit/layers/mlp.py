"""MLPs: timm's channel MLP, a token-mixing variant and CLIP's QuickGELU."""

from __future__ import annotations

import torch
from timm.layers import Mlp, QuickGELU

__all__ = ["Mlp", "MixerMlp", "QuickGELU"]


class MixerMlp(Mlp):
    """MLP over the *token* axis (MLP-Mixer style): [B, N_in, C] -> [B, N_out, C].

    ``in_features`` / ``out_features`` are token counts; this is how the grouping block turns
    ``num_group_tokens`` tokens into ``num_output_groups`` segment queries.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)
