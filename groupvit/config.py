"""Model configuration dataclasses.

One dataclass per tower plus the two-tower :class:`GroupViTConfig`. The defaults are
GroupViT-S as released; named presets (``model_configs/*.json``) hold only overrides.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from groupvit.errors import InputError


@dataclass
class VisionConfig:
    """Grouping vision transformer (patch embed -> stages of blocks + grouping)."""

    image_size: int = 224  # training resolution; fixes the stored pos-embed grid (image_size // patch_size)
    patch_size: int = 16  # square patch (conv kernel and stride)
    # "patch": one strided conv per patch (ViT, the released models); "conv": 3x3 stride-2 convs with
    # BatchNorm and ReLU down to the same grid (Xiao et al. 2021; patch_size a power of two);
    # "conv_pyramid": that stem one stride-2 stage deeper, upsampled and added back onto the patch grid
    # (tokens on a grid twice as fine as the deeper stem's, with its receptive field; layers/conv_stem.py)
    stem: str = "patch"
    # with a conv stem: 3x3 stride-1 conv-BN-ReLU layers after each stride-2 conv (a token of a 3-conv
    # stem then sees 15 + 28 * n px instead of 15); 0: Xiao et al.'s stem
    stem_extra_convs: int = 0
    in_chans: int = 3  # input channels
    width: int = 384  # token width shared by every stage
    depths: tuple[int, ...] = (6, 3, 3)  # transformer blocks per stage
    num_heads: tuple[int, ...] = (
        6,
        6,
        6,
    )  # attention heads per stage (also used by the pre-assign cross-attn)
    num_group_tokens: tuple[int, ...] = (64, 8, 0)  # learnable group tokens per stage; 0 = no grouping block
    num_output_groups: tuple[int, ...] = (64, 8)  # segments produced by each grouping block
    mlp_ratio: float = 4.0  # hidden width of block MLPs and the grouping channel MLP, relative to width
    token_mlp_ratio: float = 0.5  # hidden size of the token-mixing MLPs (grouping + group projector) / width
    qkv_bias: bool = True  # bias on the fused qkv projection
    drop_path_rate: float = 0.1  # stochastic depth, linearly increasing over all blocks
    assign_eps: float = 1.0  # added to each group's assignment sum before normalising its row
    gumbel_tau: float = 1.0  # temperature of the Gumbel noise used during training
    hard_assignment: bool = True  # straight-through one-hot assignment (the released model uses it)
    # add each grouping block's query back onto its segment token (the paper). The query has
    # attended to every image token, so False makes a segment token depend only on its own tokens
    group_query_residual: bool = True
    layer_norm_eps: float = 1e-5  # epsilon of every LayerNorm in the tower

    def __post_init__(self) -> None:
        for name in ("depths", "num_heads", "num_group_tokens", "num_output_groups"):
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        num_stages = len(self.depths)
        if len(self.num_heads) != num_stages or len(self.num_group_tokens) != num_stages:
            raise ValueError(
                f"depths {self.depths}, num_heads {self.num_heads} and num_group_tokens "
                f"{self.num_group_tokens} must have one entry per stage"
            )
        grouping_stages = sum(1 for n in self.num_group_tokens if n > 0)
        if len(self.num_output_groups) != grouping_stages:
            raise ValueError(
                f"num_output_groups {self.num_output_groups} needs one entry per stage with group tokens "
                f"({grouping_stages} in num_group_tokens {self.num_group_tokens})"
            )
        if self.stem not in ("patch", "conv", "conv_pyramid"):
            raise ValueError(f"stem must be 'patch', 'conv' or 'conv_pyramid', got {self.stem!r}")
        if self.stem_extra_convs < 0 or (self.stem_extra_convs and self.stem == "patch"):
            raise ValueError(
                f"stem_extra_convs must be >= 0 and needs a conv stem, got {self.stem_extra_convs}"
            )
        if any(self.width % h for h in self.num_heads):
            raise ValueError(f"width {self.width} must be divisible by every num_heads {self.num_heads}")

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid of the stored positional embedding (trained resolution)."""
        side = self.image_size // self.patch_size
        return side, side


@dataclass
class TextConfig:
    """CLIP-style causal text transformer."""

    context_length: int = 77  # maximum token sequence length (learned positional embedding size)
    vocab_size: int = 49408  # CLIP BPE vocabulary size
    width: int = 256  # token width
    layers: int = 12  # transformer blocks
    heads: int = 4  # attention heads
    mlp_ratio: float = 4.0  # block MLP hidden width relative to width
    layer_norm_eps: float = 1e-5  # epsilon of every LayerNorm in the tower


@dataclass
class FusionConfig:
    """Language-aware deep fusion (FIBER's gated cross-attention; docs/fusion.md). 0 layers: off.

    Fused layers add ``alpha * CrossAttn(SelfAttn(x), context)`` with a learnable ``alpha`` per layer
    that starts at 0, so a released checkpoint loaded into a fused model computes what it did.
    """

    layers: int = 0  # last N transformer blocks of every grouping stage attend to the caption's tokens
    text_layers: int = 0  # last N text blocks attend to the image's final tokens (GLIP's reverse direction)
    # each token's cross-attention output is rescaled to the norm of the self-attention output it is added
    # to, so |alpha| bounds the fusion's share (docs/fusion.md: free outputs grew to 6-14x that norm and
    # the groups collapsed to one per image)
    relative_output: bool = False

    def __post_init__(self) -> None:
        if self.layers < 0 or self.text_layers < 0:
            raise ValueError(f"fusion layers must be >= 0, got {self}")


@dataclass
class InferenceConfig:
    """How the preset is evaluated: the one source that the transforms, the demo, grounding and the
    configs read."""

    short_side: int = 448  # images are resized to this short side (the paper: twice the 224 training size)
    bg_thresh: float = 0.95  # default background threshold for a free vocabulary (VOC / COCO-Object value)
    # phrase grounding's defaults (PhraseGrounder). A caption's few phrases are no closed vocabulary,
    # so the softmax over them says little about background; an absolute test on the cosine
    # similarity does (GLIP scores each phrase on its own). Cosines depend on the trained weights:
    # each preset's values are chosen for its model, on a tuning split (docs/grounding.md)
    phrase_bg_thresh: float = 0.95  # the zero-shot test among the caption's phrases (0: off)
    min_similarity: float = -1.0  # a group less similar than this to every phrase is background (-1: off)

    def __post_init__(self) -> None:
        thresholds_ok = all(0.0 <= t <= 1.0 for t in (self.bg_thresh, self.phrase_bg_thresh))
        if self.short_side < 1 or not thresholds_ok or not -1.0 <= self.min_similarity <= 1.0:
            raise ValueError(f"inference needs short_side >= 1 and thresholds in [0, 1], got {self}")


@dataclass
class RefineConfig:
    """Test-time refinements on top of the zero-shot protocol (docs/refinements.md has each one's
    measured gain). The defaults turn every one off, so the paper's protocol is exact."""

    # pixel-adaptive mask refinement: iterations of propagating the scores to colour-similar
    # neighbours (0: off; TCL and NACLIP use 10)
    pamr_iterations: int = 0
    pamr_dilations: tuple[int, ...] = (1, 2, 4, 8, 12, 24)  # neighbour rings, pixels apart
    # a pixel's scores mix every final group's row by its soft assignment to them (False: the
    # row of its argmax group, the paper)
    soft_groups: bool = False
    scales: tuple[float, ...] = (1.0,)  # test-time scales of the input (the scores are averaged)
    flip: bool = False  # also score the horizontally flipped input of every scale
    # every view also at each (rows, columns) pair of these paddings, e.g. (0, 4): four views whose
    # token grids lie half an 8-px patch apart (docs/refinements.md)
    shifts: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        self.pamr_dilations = tuple(int(d) for d in self.pamr_dilations)
        self.scales = tuple(float(s) for s in self.scales)
        self.shifts = tuple(int(s) for s in self.shifts)
        if isinstance(self.pamr_iterations, bool) or not isinstance(self.pamr_iterations, int):
            raise InputError(f"pamr_iterations must be an int >= 0, got {self.pamr_iterations!r}")
        if self.pamr_iterations < 0 or not self.pamr_dilations or min(self.pamr_dilations) < 1:
            raise InputError(
                f"refine needs pamr_iterations >= 0 and dilations >= 1, got {self.pamr_iterations} "
                f"and {self.pamr_dilations}"
            )
        if not self.scales or min(self.scales) <= 0:
            raise InputError(f"refine scales must be positive, got {self.scales}")
        if not self.shifts or min(self.shifts) < 0:
            raise InputError(f"refine shifts must be pixel counts >= 0, got {self.shifts}")

    @property
    def is_identity(self) -> bool:
        """Whether every refinement is off (the paper's protocol)."""
        return self == RefineConfig()


@dataclass
class GroupViTConfig:
    """Two-tower GroupViT: vision + text towers, MLP projection heads, learned temperatures."""

    vision: VisionConfig = field(default_factory=VisionConfig)  # image tower
    text: TextConfig = field(default_factory=TextConfig)  # text tower
    embed_dim: int = 256  # shared image-text embedding size (projector output)
    projection_hidden_dim: int = 4096  # hidden width of both projection MLPs
    logit_scale_init: float = math.log(1 / 0.07)  # init of log(1 / temperature), contrastive loss
    multi_label_logit_scale_init: float = math.log(1 / 0.07)  # same, for the multi-label loss
    logit_scale_max: float = 100.0  # exp(logit_scale) is clamped at this value
    inference: InferenceConfig = field(default_factory=InferenceConfig)  # evaluation size and threshold
    fusion: FusionConfig = field(default_factory=FusionConfig)  # text-conditioned grouping (off by default)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupViTConfig:
        """Build a config from a (possibly partial) nested dict; unknown keys raise ``KeyError``."""
        return apply_overrides(cls(), data)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain-dict view (tuples become lists, JSON friendly)."""
        return dataclasses.asdict(self)


def _coerce(value: Any, current: Any) -> Any:
    # JSON has no tuples: keep tuple-typed fields tuples so configs compare equal and stay hashable.
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    return value


def _update_dataclass(obj: Any, updates: dict[str, Any], prefix: str) -> Any:
    names = {f.name for f in dataclasses.fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in updates.items():
        if key not in names:
            valid = ", ".join(sorted(names))
            raise KeyError(
                f"unknown config key {prefix + key!r} (valid keys for {type(obj).__name__}: {valid})"
            )
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if dataclasses.is_dataclass(value):
                changes[key] = value
                continue
            if not isinstance(value, dict):
                raise TypeError(f"config key {prefix + key!r} expects a dict of overrides, got {value!r}")
            changes[key] = _update_dataclass(current, value, f"{prefix}{key}.")
        else:
            changes[key] = _coerce(value, current)
    return dataclasses.replace(obj, **changes)


def apply_overrides(config: GroupViTConfig, overrides: dict[str, Any]) -> GroupViTConfig:
    """Return a copy of ``config`` with ``overrides`` applied.

    Keys are field names; tower fields are given either nested (``{"vision": {"width": 64}}``) or
    dotted (``{"vision.width": 64}``). An unknown key raises ``KeyError`` naming it.
    """
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = key.split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise KeyError(f"config key {key!r} mixes a dotted and a plain override")
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]].update(value)
        else:
            node[parts[-1]] = value
    return _update_dataclass(config, nested, "")
