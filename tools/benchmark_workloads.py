"""The two workloads of ``tools/benchmark.py``, written once for our GroupViT and once for
transformers' ``GroupViTModel`` so that both sides do the same work on the same weights.

- zero-shot segmentation: image tower at the evaluation size, per-stage soft assignments
  multiplied into a pixel-to-group map, group-class affinity against cached class embeddings,
  background channel, argmax (``groupvit.zero_shot_functional`` on either side's tensors);
- training step: image + 1 caption + K prompts per image, contrastive + multi-label losses,
  backward, AdamW step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from groupvit import create_model
from groupvit.checkpoint import convert_state_dict, hf_config_dict
from groupvit.config import GroupViTConfig
from groupvit.layers import resample_pos_embed
from groupvit.losses import ContrastiveLoss, MultiLabelContrastiveLoss
from groupvit.models.groupvit import GroupViT, SegmentationFeatures
from groupvit.zero_shot import ZeroShotSegmenter
from groupvit.zero_shot_functional import build_class_embeddings, scores_from_features


def hf_config(cfg: GroupViTConfig, image_size: int | None = None):  # -> transformers.GroupViTConfig
    """transformers' GroupViTConfig with the same architecture as ``cfg`` (vision at ``image_size``)."""
    import transformers

    return transformers.GroupViTConfig(**hf_config_dict(cfg, image_size))


def hf_embeds(output: Tensor | object) -> Tensor:
    """The projected embeddings [B, D] from transformers' ``get_text_features`` /
    ``get_image_features``: a tensor in transformers 4.x, an output object holding them as
    ``pooler_output`` in 5.x."""
    return output if isinstance(output, Tensor) else output.pooler_output


def build_ours(name: str, seed: int) -> GroupViT:
    """Our model with seeded random weights; no stochastic depth (transformers' port has none)."""
    torch.manual_seed(seed)
    return create_model(name, **{"vision.drop_path_rate": 0.0})


def build_hf(ours: GroupViT, image_size: int | None = None) -> nn.Module:
    """transformers' GroupViTModel holding ``ours``' weights; at another ``image_size`` the position
    embedding is resampled to that grid once (bicubic, as our tower does on the fly), because
    transformers' vision model has no option to interpolate it."""
    import transformers

    cfg = ours.config
    hf = transformers.GroupViTModel(hf_config(cfg, image_size))
    sd = convert_state_dict(ours.state_dict(), src="ours", dst="hf")
    if image_size and image_size != cfg.vision.image_size:
        grid = (image_size // cfg.vision.patch_size,) * 2
        key = "vision_model.embeddings.position_embeddings"
        sd[key] = resample_pos_embed(sd[key], grid, ours.vision.pos_grid)
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(
            f"weights do not map onto transformers: missing {missing}, unexpected {unexpected}"
        )
    return hf


def make_tokens(
    batch: int,
    rows: int,
    context: int = 77,
    vocab: int = 49408,
    caption_len: tuple[int, int] = (8, 30),
    prompt_len: tuple[int, int] = (5, 10),
    seed: int = 0,
) -> Tensor:
    """CLIP-like token ids [batch, rows, context]: row 0 a caption, rows 1.. noun prompts.

    Each row is [sot, words..., eot, 0...]; word counts are uniform in ``caption_len`` /
    ``prompt_len`` (CC3M captions are ~10-20 BPE tokens, "a photo of a {noun}." about 7).
    """
    g = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(batch, rows, context, dtype=torch.long)
    for b in range(batch):
        for r in range(rows):
            lo, hi = caption_len if r == 0 else prompt_len
            n = int(torch.randint(lo, hi + 1, (1,), generator=g))
            tokens[b, r, 0] = vocab - 2
            tokens[b, r, 1 : 1 + n] = torch.randint(1, vocab - 2, (n,), generator=g)
            tokens[b, r, 1 + n] = vocab - 1
    return tokens


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


class _HFText:
    """``encode_text`` view of transformers' model, for ``build_class_embeddings``."""

    def __init__(self, hf: nn.Module) -> None:
        self.hf = hf

    def encode_text(self, tokens: Tensor, normalize: bool = False) -> Tensor:
        x = hf_embeds(self.hf.get_text_features(input_ids=tokens))
        return F.normalize(x, dim=-1) if normalize else x


class _Compiled:
    """Our model with a compiled ``forward_segmentation`` (one graph per input shape); every
    other attribute is the model's, so the eager model stays usable next to it."""

    def __init__(self, model: GroupViT) -> None:
        self.model = model
        self.forward_segmentation = torch.compile(model.forward_segmentation, dynamic=False)

    def __getattr__(self, name: str):
        return getattr(self.model, name)


class OursSegmentation:
    """Zero-shot segmentation with ``ZeroShotSegmenter`` (class embeddings cached once)."""

    def __init__(
        self,
        model: GroupViT,
        class_names: Sequence[str],
        tokenizer: Callable,
        amp: torch.dtype | None = None,
        compile: bool = False,
    ) -> None:
        model.eval()
        self.segmenter = ZeroShotSegmenter(
            _Compiled(model) if compile else model, class_names, tokenizer=tokenizer, background=True
        )
        self.segmenter.class_embeddings  # noqa: B018 - computed once here, not in the timed calls
        self.amp = amp

    def __call__(self, images: Tensor) -> Tensor:
        with autocast(images.device, self.amp):
            return self.segmenter.predict(images).labels

    def scores(self, images: Tensor) -> Tensor:
        return self.segmenter.predict(images).scores


class HFSegmentation:
    """The same protocol on transformers' tensors: its vision model's groupings (soft
    assignments, ``output_attentions=True``), final tokens and visual projection."""

    def __init__(
        self, hf: nn.Module, class_names: Sequence[str], tokenizer: Callable, amp: torch.dtype | None = None
    ) -> None:
        self.hf = hf.eval()
        device = next(hf.parameters()).device
        self.class_embeds = build_class_embeddings(
            _HFText(hf), tokenizer, list(class_names), ["a photo of a {}."], device
        )
        self.amp = amp

    @torch.no_grad()
    def scores(self, images: Tensor) -> Tensor:
        hf = self.hf
        with autocast(images.device, self.amp):
            out = hf.vision_model(pixel_values=images, output_attentions=True)
            tokens = out.last_hidden_state  # [B, G, C] after the final LayerNorm
            group_embeds = hf.visual_projection(tokens.flatten(0, 1)).view(*tokens.shape[:2], -1)
            features = SegmentationFeatures(
                assignments=tuple(out.attentions),
                group_embeds=group_embeds,
                image_embeds=hf.visual_projection(out.pooler_output),
                grid_size=(images.shape[-2] // hf.config.vision_config.patch_size,) * 2,
            )
            scale = hf.logit_scale.exp().clamp(max=100.0)
            return scores_from_features(features, self.class_embeds, scale, tuple(images.shape[-2:]))

    def __call__(self, images: Tensor) -> Tensor:
        return self.scores(images).argmax(dim=1)


def _losses(image: Tensor, texts: Tensor, scale: Tensor, ml_scale: Tensor) -> Tensor:
    """image [B, D], texts [B, 1 + K, D] (caption first) -> contrastive + multi-label loss, in fp32."""
    image, texts = image.float(), texts.float()
    itc = ContrastiveLoss()(image, texts[:, 0], scale.float())
    return itc + MultiLabelContrastiveLoss()(image, texts[:, 1:], ml_scale.float())


def _adamw(params: list[nn.Parameter], device: torch.device) -> torch.optim.Optimizer:
    # the same optimiser on both sides: fused kernels where torch has them (CPU and CUDA, fp32 params)
    return torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05, fused=device.type in ("cpu", "cuda"))


class OursTrainStep:
    """forward (image + all texts in one ``encode_text`` call), both losses, backward, AdamW."""

    def __init__(
        self,
        model: GroupViT,
        amp: torch.dtype | None = None,
        compile: bool = False,
        grad_checkpointing: bool = False,
    ) -> None:
        self.model = model.train()
        model.set_grad_checkpointing(grad_checkpointing)
        self.optimizer = _adamw(list(model.parameters()), next(model.parameters()).device)
        self.amp = amp
        self.forward = torch.compile(self._forward) if compile else self._forward

    def _forward(self, images: Tensor, tokens: Tensor) -> Tensor:
        model = self.model
        with autocast(images.device, self.amp):
            image = model.encode_image(images)
            texts = model.encode_text(tokens.flatten(0, 1)).view(*tokens.shape[:2], -1)
        return _losses(image, texts, model.logit_scale_value(), model.multi_label_logit_scale_value())

    def __call__(self, images: Tensor, tokens: Tensor) -> Tensor:
        loss = self.forward(images, tokens)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


class HFTrainStep:
    """The same step with transformers' ``get_image_features`` / ``get_text_features`` (all texts
    in one call); a multi-label temperature is added since transformers' model has none."""

    def __init__(
        self, hf: nn.Module, amp: torch.dtype | None = None, grad_checkpointing: bool = False
    ) -> None:
        self.hf = hf.train()
        if grad_checkpointing:
            hf.gradient_checkpointing_enable()
        device = next(hf.parameters()).device
        self.ml_logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07), device=device))
        self.optimizer = _adamw([*hf.parameters(), self.ml_logit_scale], device)
        self.amp = amp

    def __call__(self, images: Tensor, tokens: Tensor) -> Tensor:
        hf = self.hf
        with autocast(images.device, self.amp):
            image = hf_embeds(hf.get_image_features(pixel_values=images))
            texts = hf_embeds(hf.get_text_features(input_ids=tokens.flatten(0, 1))).view(
                *tokens.shape[:2], -1
            )
        scale = hf.logit_scale.exp().clamp(max=100.0)
        loss = _losses(image, texts, scale, self.ml_logit_scale.exp().clamp(max=100.0))
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


@torch.no_grad()
def check_agreement(
    ours: GroupViT, hf: nn.Module, ours_seg: OursSegmentation, hf_seg: HFSegmentation, seg_size: int
) -> dict[str, float]:
    """Max abs differences between the two implementations in fp32 eval mode (a 2-image batch)."""
    device = next(ours.parameters()).device
    was_training = ours.training, hf.training
    ours.eval(), hf.eval()
    size = ours.config.vision.image_size
    g = torch.Generator().manual_seed(123)
    images = torch.randn(2, 3, size, size, generator=g).to(device)
    tokens = make_tokens(2, 4, seed=1).flatten(0, 1).to(device)
    out = hf(input_ids=tokens, pixel_values=images, output_attentions=True)
    errors = {
        "image_embeds": (ours.encode_image(images, normalize=True) - out.image_embeds).abs().max().item(),
        "text_embeds": (ours.encode_text(tokens, normalize=True) - out.text_embeds).abs().max().item(),
    }
    seg = ours.forward_segmentation(images)
    for i, (a, r) in enumerate(zip(seg.assignments, out.vision_model_output.attentions)):
        errors[f"assignment_{i}"] = (a - r).abs().max().item()
    big = torch.randn(2, 3, seg_size, seg_size, generator=g).to(device)
    s_ours, s_hf = ours_seg.scores(big), hf_seg.scores(big)
    errors[f"seg_scores_{seg_size}"] = (s_ours - s_hf).abs().max().item()
    errors[f"seg_label_disagreement_{seg_size}"] = (s_ours.argmax(1) != s_hf.argmax(1)).float().mean().item()
    ours.train(was_training[0]), hf.train(was_training[1])
    return errors
