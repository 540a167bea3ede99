"""Building blocks of the GroupViT towers (one concept per module)."""

from groupvit.layers.attention import Attention, CrossAttention
from groupvit.layers.blocks import CrossAttentionBlock, TransformerBlock
from groupvit.layers.conv_stem import ConvStem
from groupvit.layers.grouping import AssignAttention, GroupingBlock, hard_softmax
from groupvit.layers.linear import Linear
from groupvit.layers.mlp import MixerMlp, Mlp, QuickGELU
from groupvit.layers.patch_embed import PatchEmbed
from groupvit.layers.pos_embed import resample_pos_embed

__all__ = [
    "Attention",
    "AssignAttention",
    "ConvStem",
    "CrossAttention",
    "CrossAttentionBlock",
    "GroupingBlock",
    "Linear",
    "Mlp",
    "MixerMlp",
    "PatchEmbed",
    "QuickGELU",
    "TransformerBlock",
    "hard_softmax",
    "resample_pos_embed",
]
