"""Projection head into the joint image-text space."""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from torch import nn

from groupvit.layers.linear import Linear


class ProjectionHead(nn.Module):
    """Linear -> BatchNorm1d -> ReLU -> Linear: [..., in_dim] -> [..., out_dim].

    Leading dims are flattened so BatchNorm sees every vector (e.g. all B * G group tokens) as a sample.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc1 = Linear(in_dim, hidden_dim)
        self.norm = nn.BatchNorm1d(hidden_dim)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = Linear(hidden_dim, out_dim)
        for linear in (self.fc1, self.fc2):
            trunc_normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = self.fc2(self.act(self.norm(self.fc1(x.reshape(-1, shape[-1])))))
        return x.reshape(*shape[:-1], x.shape[-1])
