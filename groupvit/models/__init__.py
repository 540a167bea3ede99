"""GroupViT towers and the two-tower model."""

from groupvit.models.groupvit import GroupViT, GroupViTOutput, SegmentationFeatures
from groupvit.models.projector import ProjectionHead
from groupvit.models.text import TextTransformer
from groupvit.models.vision import GroupViTVisionTower, VisionFeatures

__all__ = [
    "GroupViT",
    "GroupViTOutput",
    "GroupViTVisionTower",
    "ProjectionHead",
    "SegmentationFeatures",
    "TextTransformer",
    "VisionFeatures",
]
