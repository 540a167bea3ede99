"""MLPs: the channel MLP, a token-mixing variant and CLIP's QuickGELU."""

from __future__ import annotations

import torch
from timm.layers import QuickGELU
from torch import nn

from groupvit.layers.linear import Linear

__all__ = ["Mlp", "MixerMlp", "QuickGELU"]


class Mlp(nn.Module):
    """fc1 -> activation -> fc2 over the last axis: [..., in_features] -> [..., out_features].

    timm's ``Mlp`` layout (``fc1`` / ``fc2``, so checkpoints keep their keys) on :class:`Linear`.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc1 = Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = Linear(hidden_features, out_features or in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MixerMlp(Mlp):
    """MLP over the *token* axis (MLP-Mixer style): [B, N_in, C] -> [B, N_out, C].

    ``in_features`` / ``out_features`` are token counts; this is how the grouping block turns
    ``num_group_tokens`` tokens into ``num_output_groups`` segment queries.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)
