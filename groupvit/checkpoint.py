"""Checkpoint loading and conversion between the official, HF transformers and our layouts.

Conversion is pure key renaming (one table per foreign layout, readable in both directions) plus
two tensor reshapes: fused qkv <-> separate q/k/v projections (HF) and Conv1d <-> Linear projector
weights (official release). ``load_checkpoint`` adds the I/O: paths, URLs, released tags, wrappers;
the files themselves are read by :mod:`groupvit.checkpoint_io` (safetensors or restricted unpickling)
and downloads are hash-checked by :mod:`groupvit.download`.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from groupvit.checkpoint_io import read_checkpoint_file
from groupvit.download import download, sha256_prefix_in_name
from groupvit.errors import InputError
from groupvit.layers.pos_embed import resample_pos_embed
from groupvit.presets import get_model_config, list_models

if TYPE_CHECKING:
    from groupvit.config import GroupViTConfig
    from groupvit.models.groupvit import GroupViT

logger = logging.getLogger(__name__)
StateDict = dict[str, torch.Tensor]

_RELEASE = "https://github.com/xvjiarui/GroupViT/releases/download/v1.0.0/"
RELEASED_CHECKPOINTS = {  # tag -> (model name, URL)
    "gcc_yfcc": ("groupvit_s", _RELEASE + "group_vit_gcc_yfcc_30e-879422e0.pth"),
    "gcc_redcaps": ("groupvit_s", _RELEASE + "group_vit_gcc_redcaps_30e-3dd09a76.pth"),
}

LAYOUTS = ("official", "hf", "ours")

# (foreign prefix, our prefix); the first matching prefix wins, so specific entries come first.
# "{i}" / "{j}" stand for layer indices. "self_attn.qkv." is the transient fused HF name.
_OFFICIAL_RULES: list[tuple[str, str]] = [
    ("img_encoder.patch_embed.", "vision.patch_embed."),
    ("img_encoder.pos_embed", "vision.pos_embed"),
    ("img_encoder.layers.{i}.blocks.{j}.", "vision.stages.{i}.blocks.{j}."),
    ("img_encoder.layers.{i}.downsample.", "vision.stages.{i}.grouping."),
    ("img_encoder.layers.{i}.group_projector.0.", "vision.stages.{i}.group_projector.norm."),
    ("img_encoder.layers.{i}.group_projector.1.", "vision.stages.{i}.group_projector.mlp."),
    ("img_encoder.layers.{i}.group_token", "vision.stages.{i}.group_token"),
    ("img_encoder.norm.", "vision.norm."),
    ("text_encoder.token_embedding.", "text.token_embedding."),
    ("text_encoder.positional_embedding", "text.positional_embedding"),
    ("text_encoder.transformer.resblocks.{i}.attn.in_proj_weight", "text.blocks.{i}.attn.qkv.weight"),
    ("text_encoder.transformer.resblocks.{i}.attn.in_proj_bias", "text.blocks.{i}.attn.qkv.bias"),
    ("text_encoder.transformer.resblocks.{i}.attn.out_proj.", "text.blocks.{i}.attn.proj."),
    ("text_encoder.transformer.resblocks.{i}.ln_1.", "text.blocks.{i}.norm1."),
    ("text_encoder.transformer.resblocks.{i}.ln_2.", "text.blocks.{i}.norm2."),
    ("text_encoder.transformer.resblocks.{i}.mlp.c_fc.", "text.blocks.{i}.mlp.fc1."),
    ("text_encoder.transformer.resblocks.{i}.mlp.c_proj.", "text.blocks.{i}.mlp.fc2."),
    ("text_encoder.ln_final.", "text.norm."),
    ("img_projector.linear_hidden.0.", "image_projector.fc1."),
    ("img_projector.linear_hidden.1.", "image_projector.norm."),
    ("img_projector.linear_out.", "image_projector.fc2."),
    ("text_projector.linear_hidden.0.", "text_projector.fc1."),
    ("text_projector.linear_hidden.1.", "text_projector.norm."),
    ("text_projector.linear_out.", "text_projector.fc2."),
    ("logit_scale", "logit_scale"),
    ("multi_label_logit_scale", "multi_label_logit_scale"),
]

_HF_RULES: list[tuple[str, str]] = [
    ("vision_model.embeddings.patch_embeddings.projection.", "vision.patch_embed.proj."),
    ("vision_model.embeddings.layernorm.", "vision.patch_embed.norm."),
    ("vision_model.embeddings.position_embeddings", "vision.pos_embed"),
    ("vision_model.encoder.stages.{i}.layers.{j}.self_attn.qkv.", "vision.stages.{i}.blocks.{j}.attn.qkv."),
    (
        "vision_model.encoder.stages.{i}.layers.{j}.self_attn.out_proj.",
        "vision.stages.{i}.blocks.{j}.attn.proj.",
    ),
    ("vision_model.encoder.stages.{i}.layers.{j}.layer_norm1.", "vision.stages.{i}.blocks.{j}.norm1."),
    ("vision_model.encoder.stages.{i}.layers.{j}.layer_norm2.", "vision.stages.{i}.blocks.{j}.norm2."),
    ("vision_model.encoder.stages.{i}.layers.{j}.mlp.", "vision.stages.{i}.blocks.{j}.mlp."),
    (
        "vision_model.encoder.stages.{i}.downsample.pre_assign_attn.attn.out_proj.",
        "vision.stages.{i}.grouping.pre_assign_attn.attn.proj.",
    ),
    ("vision_model.encoder.stages.{i}.downsample.", "vision.stages.{i}.grouping."),
    ("vision_model.encoder.stages.{i}.group_projector.0.", "vision.stages.{i}.group_projector.norm."),
    ("vision_model.encoder.stages.{i}.group_projector.1.", "vision.stages.{i}.group_projector.mlp."),
    ("vision_model.encoder.stages.{i}.group_token", "vision.stages.{i}.group_token"),
    ("vision_model.layernorm.", "vision.norm."),
    ("text_model.embeddings.token_embedding.", "text.token_embedding."),
    ("text_model.embeddings.position_embedding.weight", "text.positional_embedding"),
    ("text_model.encoder.layers.{i}.self_attn.qkv.", "text.blocks.{i}.attn.qkv."),
    ("text_model.encoder.layers.{i}.self_attn.out_proj.", "text.blocks.{i}.attn.proj."),
    ("text_model.encoder.layers.{i}.layer_norm1.", "text.blocks.{i}.norm1."),
    ("text_model.encoder.layers.{i}.layer_norm2.", "text.blocks.{i}.norm2."),
    ("text_model.encoder.layers.{i}.mlp.", "text.blocks.{i}.mlp."),
    ("text_model.final_layer_norm.", "text.norm."),
    ("visual_projection.0.", "image_projector.fc1."),
    ("visual_projection.1.", "image_projector.norm."),
    ("visual_projection.3.", "image_projector.fc2."),
    ("text_projection.0.", "text_projector.fc1."),
    ("text_projection.1.", "text_projector.norm."),
    ("text_projection.3.", "text_projector.fc2."),
    ("logit_scale", "logit_scale"),
]

_PROJECTOR_WEIGHT = re.compile(r"^(image|text)_projector\.fc[12]\.weight$")
_HF_SPLIT_QKV = re.compile(r"^(.*)\.self_attn\.([qkv])_proj\.(weight|bias)$")
_HF_FUSED_QKV = re.compile(r"^(.*)\.self_attn\.qkv\.(weight|bias)$")


@functools.cache
def _compile(template: str) -> tuple[re.Pattern[str], list[str]]:
    names = re.findall(r"\{(\w)\}", template)
    pattern = re.escape(template)
    for name in names:
        pattern = pattern.replace(re.escape("{" + name + "}"), rf"(?P<{name}>\d+)")
    return re.compile("^" + pattern), names


def _rename(key: str, rules: list[tuple[str, str]], reverse: bool) -> str:
    """Rename ``key`` by the first matching rule (foreign -> ours, or ours -> foreign if ``reverse``)."""
    for foreign, ours in rules:
        src, dst = (ours, foreign) if reverse else (foreign, ours)
        pattern, _ = _compile(src)
        m = pattern.match(key)
        if m:
            return dst.format(**m.groupdict()) + key[m.end() :]
    return key  # unknown keys pass through, so loading reports them


def detect_layout(sd: Mapping[str, Any]) -> str:
    """'official', 'hf' or 'ours' from the key names; ``ValueError`` if it is none of them."""
    keys = list(sd)
    if any(k.startswith(("img_encoder.", "text_encoder.", "img_projector.")) for k in keys):
        return "official"
    if any(k.startswith(("vision_model.", "text_model.", "visual_projection.")) for k in keys):
        return "hf"
    if any(k.startswith(("vision.", "text.", "image_projector.")) for k in keys):
        return "ours"
    raise InputError(f"not a GroupViT state dict (official, HF or ours); first keys: {keys[:8]}")


def official_to_ours(sd: Mapping[str, torch.Tensor]) -> StateDict:
    out = {}
    for key, value in sd.items():
        new = _rename(key, _OFFICIAL_RULES, reverse=False)
        if _PROJECTOR_WEIGHT.match(new) and value.ndim == 3:
            value = value.squeeze(-1)  # Conv1d(k=1) weight [out, in, 1] -> Linear [out, in]
        out[new] = value
    return out


def ours_to_official(sd: Mapping[str, torch.Tensor]) -> StateDict:
    out = {}
    for key, value in sd.items():
        if _PROJECTOR_WEIGHT.match(key) and value.ndim == 2:
            value = value.unsqueeze(-1)
        out[_rename(key, _OFFICIAL_RULES, reverse=True)] = value
    return out


def hf_to_ours(sd: Mapping[str, torch.Tensor]) -> StateDict:
    out, split = {}, {}
    for key, value in sd.items():
        if key.endswith("position_ids"):
            continue  # HF's non-learned position index buffer
        m = _HF_SPLIT_QKV.match(key)
        if m:
            split.setdefault((m[1], m[3]), {})[m[2]] = value
        else:
            out[_rename(key, _HF_RULES, reverse=False)] = value
    for (prefix, kind), parts in split.items():
        fused = f"{prefix}.self_attn.qkv.{kind}"
        if set(parts) != {"q", "k", "v"}:
            out.update({f"{prefix}.self_attn.{p}_proj.{kind}": v for p, v in parts.items()})  # reported later
            continue
        out[_rename(fused, _HF_RULES, reverse=False)] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def ours_to_hf(sd: Mapping[str, torch.Tensor]) -> StateDict:
    out = {}
    for key, value in sd.items():
        if key == "multi_label_logit_scale":
            continue  # HF's GroupViTModel has no multi-label temperature
        new = _rename(key, _HF_RULES, reverse=True)
        m = _HF_FUSED_QKV.match(new)
        if m:
            for name, part in zip("qkv", value.chunk(3, dim=0)):
                out[f"{m[1]}.self_attn.{name}_proj.{m[2]}"] = part.clone()
        else:
            out[new] = value
    return out


_TO_OURS = {"official": official_to_ours, "hf": hf_to_ours, "ours": dict}
_FROM_OURS = {"official": ours_to_official, "hf": ours_to_hf, "ours": dict}


def convert_state_dict(
    sd: Mapping[str, torch.Tensor], src: str | None = None, dst: str = "ours"
) -> StateDict:
    """Convert a GroupViT state dict between layouts ('official', 'hf', 'ours'); ``src=None`` detects it."""
    src = detect_layout(sd) if src is None else src
    if src not in LAYOUTS or dst not in LAYOUTS:
        raise ValueError(f"layouts must be among {LAYOUTS}, got src={src!r}, dst={dst!r}")
    ours = _TO_OURS[src](sd)
    if dst != "ours":
        _check_released_architecture(ours, dst)
    return _FROM_OURS[dst](ours)


# Parts of our models that the released architecture (official code, transformers) does not have:
# their keys would pass through renamed, and the other side would fail on them or drop them.
_OURS_ONLY = {"vision.patch_embed.convs.": "a convolutional stem", ".fusion.": "fusion layers"}


def _check_released_architecture(sd: Mapping[str, torch.Tensor], dst: str) -> None:
    for marker, part in _OURS_ONLY.items():
        if any(marker in key for key in sd):
            raise InputError(
                f"this checkpoint has {part}, which the {dst} GroupViT does not have: keep it in "
                "our layout (--to ours)"
            )


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> StateDict:
    """Pull the model weights out of a training checkpoint.

    Handles ``{"model": sd}`` (official release), ``{"state_dict": sd}`` (mmengine) and a ``model.`` /
    ``module.`` prefix shared by every key (wrapper module, DDP). ``source`` names the file in the
    :class:`~groupvit.errors.InputError` raised when there are no tensors to load.
    """
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(
            f"{source} holds no state dict ({_what(obj)}; expected tensors, or a 'model' / 'state_dict' "
            "entry of tensors)"
        )
    sd = dict(obj)
    stripped = True
    while stripped and sd:
        stripped = False
        for prefix in ("module.", "model."):
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix) :]: v for k, v in sd.items()}
                stripped = True
    return sd


def fetch_checkpoint(url: str) -> Path:
    """Local path of a checkpoint URL (downloaded into the cache once); released files are checked
    against the sha256 prefix in their name, also when they are already in the cache."""
    released = {u for _, u in RELEASED_CHECKPOINTS.values()}
    sha256 = sha256_prefix_in_name(url.rsplit("/", 1)[-1]) if url in released else None
    return download(url, sha256_prefix=sha256)


def read_checkpoint(source: str | Path) -> StateDict:
    """State dict from a file path, an http(s) URL or a released tag (see ``RELEASED_CHECKPOINTS``).

    Files are read by :func:`groupvit.checkpoint_io.read_checkpoint_file` (``.safetensors`` or
    restricted unpickling: no code in a file ever runs); URLs go through :func:`fetch_checkpoint`.
    """
    source = str(source)
    if source in RELEASED_CHECKPOINTS:
        source = RELEASED_CHECKPOINTS[source][1]
    if source.startswith(("http://", "https://")):
        path = fetch_checkpoint(source)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            tags = ", ".join(RELEASED_CHECKPOINTS)
            raise FileNotFoundError(f"checkpoint {source!r} is not a file, a URL or a released tag ({tags})")
    return unwrap_state_dict(read_checkpoint_file(path), source=str(path))


def _what(obj: Any) -> str:
    if isinstance(obj, Mapping):
        if not obj:
            return "an empty dict"
        keys = ", ".join(repr(k) for k in list(obj)[:6])
        kinds = sorted({type(v).__name__ for v in obj.values()})
        return f"a dict of {', '.join(kinds)} with keys {keys}{' ...' if len(obj) > 6 else ''}"
    return f"a {type(obj).__name__}"


def describe_state_dict(sd: Mapping[str, torch.Tensor]) -> str:
    """One line on what a (our-layout) state dict looks like, naming a matching preset if any."""
    pos, tok = sd.get("vision.pos_embed"), sd.get("text.token_embedding.weight")
    if pos is None or tok is None:
        return "it does not look like a GroupViT checkpoint"
    blocks = sum(1 for k in sd if re.match(r"^vision\.stages\.\d+\.blocks\.\d+\.norm1\.weight$", k))
    text_layers = sum(1 for k in sd if re.match(r"^text\.blocks\.\d+\.norm1\.weight$", k))
    desc = (
        f"vision width {pos.shape[-1]}, {pos.shape[1]} positions, {blocks} vision blocks, "
        f"text width {tok.shape[-1]}, {text_layers} text layers"
    )
    for name in list_models():
        cfg = get_model_config(name)
        if (cfg.vision.width, sum(cfg.vision.depths), cfg.text.width, cfg.text.layers) == (
            pos.shape[-1],
            blocks,
            tok.shape[-1],
            text_layers,
        ):
            return f"{desc} (like preset {name!r})"
    return desc


def load_checkpoint(
    model: GroupViT,
    source: str | Path | Mapping[str, Any],
    model_name: str | None = None,
) -> tuple[str, ...]:
    """Load weights into ``model`` from a path, URL, released tag or (wrapped) state dict.

    Any layout is accepted (auto-detected and converted). A positional embedding trained at another
    grid is resampled. Loading is strict except for the documented leftovers: HF's ``position_ids``
    buffers, the ``multi_label_logit_scale`` that HF files lack, and the fusion layers
    (``*.fusion.*``, ``config.fusion``) of a model whose checkpoint has none: these keep their
    init, whose gate ``alpha`` = 0 leaves every output as the checkpoint's own model gives it.
    Otherwise a ``RuntimeError`` lists the missing, unexpected and shape-mismatched keys.

    Returns the model's keys that the checkpoint did not set (newly initialised), also logged.
    """
    if isinstance(source, (str, Path)) and str(source) in RELEASED_CHECKPOINTS:
        expected = RELEASED_CHECKPOINTS[str(source)][0]
        if model_name is not None and model_name != expected:
            raise ValueError(f"released checkpoint {str(source)!r} is for {expected!r}, not {model_name!r}")
    sd = read_checkpoint(source) if isinstance(source, (str, Path)) else unwrap_state_dict(source)
    try:
        layout = detect_layout(sd)
    except ValueError:
        layout = "unknown"
    sd = convert_state_dict(sd, src=layout) if layout != "unknown" else dict(sd)

    target = model.state_dict()
    pos = sd.get("vision.pos_embed")
    if pos is not None and pos.ndim == 3 and pos.shape != target["vision.pos_embed"].shape:
        if pos.shape[-1] == target["vision.pos_embed"].shape[-1]:
            sd["vision.pos_embed"] = resample_pos_embed(pos, model.vision.pos_grid)

    missing = [k for k in target if k not in sd]
    new = [k for k in missing if ".fusion." in k]
    if layout == "hf" and "multi_label_logit_scale" in missing:
        new.append("multi_label_logit_scale")
    for key in new:
        missing.remove(key)
        sd[key] = target[key]
    unexpected = [k for k in sd if k not in target]
    mismatched = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(target[k].shape)}"
        for k in sd
        if k in target and sd[k].shape != target[k].shape
    ]
    if missing or unexpected or mismatched:
        name = f"model {model_name!r}" if model_name else "this model"
        raise CheckpointMismatchError(
            f"checkpoint does not fit {name} (file layout: {layout}; {describe_state_dict(sd)}).\n"
            + _listing("missing keys", missing)
            + _listing("unexpected keys", unexpected)
            + _listing("shape mismatches", mismatched)
        )
    model.load_state_dict(sd, strict=True)
    if new:
        logger.info("newly initialised (not in the checkpoint): %s", ", ".join(new))
    return tuple(new)


class CheckpointMismatchError(InputError, RuntimeError):
    """The checkpoint's weights do not fit the model (another preset): the message lists the keys.
    A ``RuntimeError`` as ``load_state_dict``'s own mismatch error is, and an :class:`InputError`."""


def _listing(title: str, items: list[str], limit: int = 12) -> str:
    if not items:
        return ""
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"  {title} ({len(items)}): {', '.join(items[:limit])}{more}\n"


def hf_config_dict(cfg: GroupViTConfig, image_size: int | None = None) -> dict[str, Any]:
    """Keyword arguments of ``transformers.GroupViTConfig`` for the same architecture as ``cfg``.

    Plain data (no transformers import): ``transformers.GroupViTConfig(**hf_config_dict(cfg))``
    builds the model that our ``dst="hf"`` state dicts load into. ``image_size`` overrides the
    vision input size. transformers uses one head count for every stage and lists one (unused)
    output-group entry per stage.
    """
    v, t = cfg.vision, cfg.text
    if len(set(v.num_heads)) != 1:
        raise ValueError(f"transformers' GroupViT uses one head count for every stage, got {v.num_heads}")
    outputs = list(v.num_output_groups)
    outputs += [outputs[-1]] * (len(v.depths) - len(outputs))
    vision = dict(
        hidden_size=v.width,
        intermediate_size=int(v.width * v.mlp_ratio),
        depths=list(v.depths),
        num_hidden_layers=sum(v.depths),
        num_group_tokens=list(v.num_group_tokens),
        num_output_groups=outputs,
        num_attention_heads=v.num_heads[0],
        image_size=image_size or v.image_size,
        patch_size=v.patch_size,
        num_channels=v.in_chans,
        layer_norm_eps=v.layer_norm_eps,
        assign_eps=v.assign_eps,
        assign_mlp_ratio=[v.token_mlp_ratio, v.mlp_ratio],
    )
    text = dict(
        vocab_size=t.vocab_size,
        hidden_size=t.width,
        intermediate_size=int(t.width * t.mlp_ratio),
        num_hidden_layers=t.layers,
        num_attention_heads=t.heads,
        max_position_embeddings=t.context_length,
        layer_norm_eps=t.layer_norm_eps,
    )
    return dict(
        text_config=text,
        vision_config=vision,
        projection_dim=cfg.embed_dim,
        projection_intermediate_dim=cfg.projection_hidden_dim,
    )
