"""groupvit: open-vocabulary semantic segmentation learned from image-text pairs.

Public surface::

    model = groupvit.create_model("groupvit_s", checkpoint="group_vit_gcc_yfcc_30e-879422e0.pth")
    seg = groupvit.ZeroShotSegmenter(model, class_names=["cat", "dog"])
    result = seg.predict(images)  # SegmentationResult(scores [B, C, H, W], labels [B, H, W])

Names are resolved lazily so that ``import groupvit`` stays cheap (open_clip and
the tokenizer vocabulary load only when first used).
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "create_model": "groupvit.factory",
    "create_model_and_transforms": "groupvit.factory",
    "list_models": "groupvit.presets",
    "get_tokenizer": "groupvit.factory",
    "get_model_config": "groupvit.presets",
    "GroupViT": "groupvit.models.groupvit",
    "GroupViTOutput": "groupvit.models.groupvit",
    "SegmentationFeatures": "groupvit.models.groupvit",
    "GroupViTConfig": "groupvit.config",
    "VisionConfig": "groupvit.config",
    "TextConfig": "groupvit.config",
    "ContrastiveLoss": "groupvit.losses",
    "MultiLabelContrastiveLoss": "groupvit.losses",
    "Tokenizer": "groupvit.tokenizer",
    "get_templates": "groupvit.templates",
    "ZeroShotSegmenter": "groupvit.zero_shot",
    "SegmentationResult": "groupvit.zero_shot",
    "GroupedPrediction": "groupvit.zero_shot",
    "PhraseGrounder": "groupvit.grounding",
    "GroundingResult": "groupvit.grounding",
    "GroundedPhrase": "groupvit.grounding",
    "EvalTransform": "groupvit.preprocess",
    "load_image": "groupvit.preprocess",
    "load_checkpoint": "groupvit.checkpoint",
    "convert_state_dict": "groupvit.checkpoint",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'groupvit' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
