"""GroupViT training model for mmengine's runner (``mim train mmseg CONFIG``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS

from groupvit.errors import InputError
from groupvit.layers.fusion import GatedCrossAttention
from groupvit.loss_schedule import WeightSchedule
from groupvit.losses import (
    AffinityGroupLoss,
    ContrastiveLoss,
    ExclusiveGroupLoss,
    GroupBalanceLoss,
    GroupPhraseAlignmentLoss,
    GroupUsageFloorLoss,
    MultiLabelContrastiveLoss,
    NounGroupLoss,
    PatchPhraseAlignmentLoss,
    UnclaimedGroupLoss,
    assignment_product,
    group_phrase_targets,
    phrase_patch_shares,
    text_ids,
)
from mmseg_plugins.segmentor import GroupViTSegmentor


@MODELS.register_module()
class GroupViTDataPreProcessor(SegDataPreProcessor):
    """Training batches pass through; validation batches get mmseg's preprocessing.

    Image-text batches from :func:`mmseg_plugins.train_data.image_text_collate`
    are already stacked and ImageNet-normalised by ``groupvit.data``, so training
    only moves them to the device. Validation batches (uint8 images and
    ``SegDataSample``s) are normalised and stacked by ``SegDataPreProcessor``.
    """

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        if training:
            return self.cast_data(data)
        return super().forward(data, training)


@MODELS.register_module()
class GroupViTTrainModel(GroupViTSegmentor):
    """Trains GroupViT on image-text batches; zero-shot segments for validation.

    ``mode="loss"``: ``inputs`` [B, 3, S, S] normalised images, ``data_samples``
    ``dict(text=LongTensor [B, 1 + K, L])`` (caption, then K noun prompts) ->
    ``dict(loss_itc, loss_multi_label, logit_scale, multi_label_logit_scale)`` (plus
    ``loss_noun_group`` / ``loss_exclusive_group`` / ``loss_unclaimed_group`` / ``loss_group_balance``
    when switched on);
    the keys with ``loss`` are summed by mmengine, the scales are only logged.
    ``mode="tensor"``: ``(image_embeds [B, D], text_embeds [B, D])``, normalised.
    ``mode="predict"``: zero-shot segmentation, inherited from
    :class:`~mmseg_plugins.segmentor.GroupViTSegmentor`.

    Both losses gather embeddings across processes (with gradients) when more
    than one process trains; see ``groupvit.losses``.

    Args:
        multi_label_weight: weight of the multi-label loss (1.0 in the paper).
        duplicate_positives: identical captions / prompts in the global batch count as
            positives instead of negatives (``groupvit.losses.text_ids``). Off in the paper;
            on for small vocabularies such as the synthetic scenes, where the same prompt
            recurs many times per batch.
        group_multi_label: the multi-label loss scores each image by its best-matching final
            group instead of its pooled embedding (``groupvit.losses.MultiLabelContrastiveLoss``
            with groups). Off in the paper.
        noun_group_weight: weight of ``groupvit.losses.NounGroupLoss`` (each prompt claimed by one
            group of its image; 0 = off, as in the paper). Logged as ``loss_noun_group``.
        exclusive_group_weight: weight of ``groupvit.losses.ExclusiveGroupLoss`` (the group that
            claims a prompt prefers it to its image's other prompts: one group per named thing; 0 =
            off, as in the paper). Logged as ``loss_exclusive_group``.
        unclaimed_group_weight: weight of ``groupvit.losses.UnclaimedGroupLoss`` (groups that
            claim no prompt of their image stay equally far from every prompt of the batch; 0 =
            off, as in the paper). Logged as ``loss_unclaimed_group``.
        group_balance_weight: weight of ``groupvit.losses.GroupBalanceLoss`` (confident, evenly
            used group assignments; 0 = off, as in the paper). Logged as ``loss_group_balance``.
        affinity_group_weight: weight of ``groupvit.losses.AffinityGroupLoss`` (the patch-to-group
            map as PAMR's fixed point on the training image: groups stop at colour edges; 0 = off,
            not in the paper). Logged as ``loss_affinity_group``. A number, or ``[iteration,
            weight]`` breakpoints of a piecewise-linear schedule (``groupvit.loss_schedule``), e.g.
            ``[[0, 0.3], [900, 1.0]]``: the iteration comes from ``self.iteration`` as below.
        affinity_iterations / affinity_dilations / affinity_target: PAMR iterations, neighbour
            rings (in patches) and what is propagated (``"soft"``: the soft map; ``"hard"``: each
            patch's best group) for that loss's target.
        usage_floor_weight / usage_floor_groups: weight of ``groupvit.losses.GroupUsageFloorLoss``
            (each image's group usage spread over at least ``usage_floor_groups`` equal groups; 0 =
            off, not in the paper), the floor under the affinity loss's one-group fixed point.
            Logged as ``loss_usage_floor``. ``usage_floor_target``: ``"soft"`` (the soft map's
            shares) or ``"hard"`` (each patch counted in its best group, straight-through gradient).
        affinity_start_iter: the affinity loss counts from this training iteration on (0: from the
            first), so that the groups can form under the text losses before they are asked to
            follow the image's edges. The iteration comes from :class:`~mmseg_plugins.hooks.
            TrainIterationHook` (registered in every mmengine run); ``self.iteration`` otherwise.
        grounding_weight: weight of ``groupvit.losses.GroupPhraseAlignmentLoss`` on batches with
            phrase masks (``GroundingFolderDataset``): every final group against every phrase of its
            caption, positive where most of the group lies in the phrase's mask (0 = off). Logged as
            ``loss_grounding``. The stage-1 losses above always run with fusion off.
        grounding_fusion: the grounding loss's image forward reads the caption (the model's fused
            blocks, ``config.fusion``); False, or a model without fusion, scores the stage-1
            forward's groups (late fusion, no second forward).
        grounding_loss: ``"bce"`` or ``"focal"``.
        grounding_scale / grounding_threshold: the alignment sigmoid, ``scale * (cos - threshold)``.
        grounding_min_share: a group is a phrase's positive when more than this share of it lies
            inside the phrase's mask.
        grounding_targets: ``"group"`` (GLIP's: each group against each phrase, the targets from
            the groups the model formed) or ``"patch"`` (each patch scored by its groups against
            each phrase, positive where the patch lies in the phrase's mask:
            ``groupvit.losses.PatchPhraseAlignmentLoss``, which collapsing the groups cannot satisfy).
        train_fusion_only: stage 2 trains the fusion parameters only (the gated cross-attentions
            and their gates, ``*.fusion.*``); every weight and buffer that the fusion-off path uses
            stays as loaded (no gradient, and those modules stay in eval mode, so BatchNorm keeps
            its running statistics), so the dual encoder is the starting checkpoint bit for bit.
            The stage-1 losses then change nothing and are not computed; the batch's loss is
            ``loss_grounding`` alone (which needs ``grounding_weight`` > 0, ``grounding_fusion`` and
            a model with fusion layers).
        grad_checkpointing: recompute transformer blocks in backward (less memory).
        **kwargs: the arguments of :class:`GroupViTSegmentor` (model name,
            overrides, checkpoint, class names, zero-shot settings, data
            preprocessor).
    """

    def __init__(
        self,
        multi_label_weight: float = 1.0,
        duplicate_positives: bool = False,
        group_multi_label: bool = False,
        noun_group_weight: float = 0.0,
        exclusive_group_weight: float = 0.0,
        unclaimed_group_weight: float = 0.0,
        group_balance_weight: float = 0.0,
        affinity_group_weight: float | Sequence[Sequence[float]] = 0.0,
        affinity_iterations: int = 10,
        affinity_dilations: tuple[int, ...] = (1, 2, 3, 6),
        affinity_target: str = "soft",
        affinity_start_iter: int = 0,
        usage_floor_weight: float = 0.0,
        usage_floor_groups: float = 3.0,
        usage_floor_target: str = "soft",
        grounding_weight: float = 0.0,
        grounding_fusion: bool = True,
        grounding_loss: str = "bce",
        grounding_scale: float = 10.0,
        grounding_threshold: float = 0.4,
        grounding_min_share: float = 0.5,
        grounding_targets: str = "group",
        train_fusion_only: bool = False,
        grad_checkpointing: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.contrastive_loss = ContrastiveLoss()
        self.multi_label_loss = MultiLabelContrastiveLoss()
        self.multi_label_weight = multi_label_weight
        self.duplicate_positives = duplicate_positives
        self.group_multi_label = group_multi_label
        self.noun_group_weight = noun_group_weight
        self.noun_group_loss = NounGroupLoss()
        self.exclusive_group_weight = exclusive_group_weight
        self.exclusive_group_loss = ExclusiveGroupLoss()
        self.unclaimed_group_weight = unclaimed_group_weight
        self.unclaimed_group_loss = UnclaimedGroupLoss()
        self.group_balance_weight = group_balance_weight
        self.group_balance_loss = GroupBalanceLoss()
        self.affinity_group_weight = WeightSchedule(affinity_group_weight, "affinity_group_weight")
        self.affinity_group_loss = AffinityGroupLoss(
            affinity_iterations, tuple(affinity_dilations), affinity_target
        )
        if affinity_start_iter < 0:
            raise InputError(f"affinity_start_iter must be >= 0, got {affinity_start_iter}")
        self.affinity_start_iter = affinity_start_iter
        self.iteration = 0  # the training iteration about to run (TrainIterationHook sets it)
        self.usage_floor_weight = usage_floor_weight
        self.usage_floor_loss = GroupUsageFloorLoss(usage_floor_groups, usage_floor_target)
        self.grounding_weight = grounding_weight
        self.grounding_fusion = grounding_fusion
        self.grounding_min_share = grounding_min_share
        if grounding_targets not in ("group", "patch"):
            raise InputError(f"grounding_targets must be 'group' or 'patch', got {grounding_targets!r}")
        self.grounding_targets = grounding_targets
        self.grounding_loss = (
            GroupPhraseAlignmentLoss(grounding_loss, grounding_scale, grounding_threshold)
            if grounding_targets == "group"
            else PatchPhraseAlignmentLoss(
                grounding_loss, grounding_scale, grounding_threshold, grounding_min_share
            )
        )
        self.train_fusion_only = train_fusion_only
        if train_fusion_only:
            self._freeze_all_but_fusion(grounding_weight, grounding_fusion)
        if grad_checkpointing:
            self.model.set_grad_checkpointing(True)

    def _freeze_all_but_fusion(self, grounding_weight: float, grounding_fusion: bool) -> None:
        """``train_fusion_only``: gradients for the ``*.fusion.*`` parameters alone."""
        if not self.model.has_fusion:
            raise InputError(
                "train_fusion_only needs fusion layers: set model.model_overrides.fusion.layers > 0"
            )
        if grounding_weight <= 0 or not grounding_fusion:
            raise InputError(
                "train_fusion_only trains the fused grounding forward only: it needs grounding_weight > 0 "
                f"and grounding_fusion=True, got {grounding_weight} and {grounding_fusion}"
            )
        for name, param in self.model.named_parameters():
            param.requires_grad_(".fusion." in f".{name}")

    def train(self, mode: bool = True) -> GroupViTTrainModel:
        """With ``train_fusion_only`` only the cross-attentions follow ``mode``; the rest of the
        model stays in eval mode (BatchNorm statistics, drop path), as the dual encoder runs."""
        super().train(mode)
        if self.train_fusion_only:
            self.model.eval()
            for module in self.model.modules():
                if isinstance(module, GatedCrossAttention):
                    module.train(mode)
        return self

    def forward(self, inputs: torch.Tensor, data_samples: Any = None, mode: str = "tensor") -> Any:
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "tensor" and isinstance(data_samples, dict):
            return self._embed(inputs, data_samples["text"][:, 0])
        return super().forward(inputs, data_samples, mode)

    def _embed(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, 3, S, S], tokens [N, L] -> normalised (image [B, D], text [N, D])."""
        return self.model.encode_image(images, normalize=True), self.model.encode_text(tokens, normalize=True)

    def loss(self, inputs: torch.Tensor, data_samples: dict) -> dict[str, torch.Tensor]:
        if self.train_fusion_only:
            return self._fusion_only_loss(inputs, data_samples)
        text = data_samples["text"]  # [B, 1 + K, L]
        batch, rows = text.shape[:2]
        # ids of the full rows, so that equal texts get equal ids in every process
        needs_ids = (
            self.duplicate_positives or self.unclaimed_group_weight > 0 or self.exclusive_group_weight > 0
        )
        row_ids = text_ids(text) if needs_ids else None
        ids = row_ids if self.duplicate_positives else None  # [B, 1 + K]
        # One vision forward: pooled embedding, assignments (balance loss) and, when a loss scores
        # groups, the projected final groups.
        grounding = data_samples.get("grounding") if self.grounding_weight > 0 else None
        fused = grounding is not None and self.grounding_fusion and self.model.has_fusion
        use_groups = (grounding is not None and not fused) or (
            rows > 1
            and (
                self.group_multi_label
                or self.noun_group_weight > 0
                or self.exclusive_group_weight > 0
                or self.unclaimed_group_weight > 0
            )
        )
        image_embeds, assignments, group_embeds = self.model.encode_image_with_assignments(
            inputs, normalize=True, groups=use_groups
        )
        # One text forward for captions and prompts: the projector's BatchNorm sees them all.
        text_embeds = self.model.encode_text(text.flatten(0, 1), normalize=True).view(batch, rows, -1)
        scale = self.model.logit_scale_value()
        ml_scale = self.model.multi_label_logit_scale_value()
        # Similarities with scales up to 100 need more precision than bf16 / fp16 autocast gives.
        with torch.autocast(device_type=inputs.device.type, enabled=False):
            image_embeds, text_embeds = image_embeds.float(), text_embeds.float()
            group_embeds = None if group_embeds is None else group_embeds.float()
            losses = dict(
                loss_itc=self.contrastive_loss(
                    image_embeds, text_embeds[:, 0], scale.float(), None if ids is None else ids[:, 0]
                )
            )
            if rows > 1:
                loss_ml = self.multi_label_loss(
                    group_embeds if self.group_multi_label else image_embeds,
                    text_embeds[:, 1:],
                    ml_scale.float(),
                    None if ids is None else ids[:, 1:],
                )
                losses["loss_multi_label"] = self.multi_label_weight * loss_ml
                if self.noun_group_weight > 0:
                    losses["loss_noun_group"] = self.noun_group_weight * self.noun_group_loss(
                        group_embeds, text_embeds[:, 1:], ml_scale.float()
                    )
                if self.exclusive_group_weight > 0:
                    losses["loss_exclusive_group"] = self.exclusive_group_weight * self.exclusive_group_loss(
                        group_embeds, text_embeds[:, 1:], row_ids[:, 1:], row_ids[:, 0], ml_scale.float()
                    )
                if self.unclaimed_group_weight > 0:
                    losses["loss_unclaimed_group"] = self.unclaimed_group_weight * self.unclaimed_group_loss(
                        group_embeds, text_embeds[:, 1:], row_ids[:, 1:], ml_scale.float()
                    )
            if self.group_balance_weight > 0:
                losses["loss_group_balance"] = self.group_balance_weight * self.group_balance_loss(
                    assignments
                )
            affinity_weight = self.affinity_group_weight(self.iteration)
            if affinity_weight > 0 and self.iteration >= self.affinity_start_iter:
                losses["loss_affinity_group"] = affinity_weight * self.affinity_group_loss(
                    inputs, assignments
                )
            if self.usage_floor_weight > 0:
                losses["loss_usage_floor"] = self.usage_floor_weight * self.usage_floor_loss(assignments)
        if grounding is not None:
            losses["loss_grounding"] = self.grounding_weight * self._grounding(
                inputs, text[:, 0], grounding, (assignments, group_embeds) if not fused else None
            )
        losses["logit_scale"] = scale.detach()
        losses["multi_label_logit_scale"] = ml_scale.detach()
        return losses

    def _fusion_only_loss(self, inputs: torch.Tensor, data_samples: dict) -> dict[str, torch.Tensor]:
        """``train_fusion_only``: the fused grounding loss alone (the frozen stage-1 losses could not
        move a fusion parameter: they run with fusion off)."""
        grounding = data_samples.get("grounding")
        if grounding is None:
            raise InputError("train_fusion_only needs grounding batches (GroundingFolderDataset)")
        loss = self._grounding(inputs, data_samples["text"][:, 0], grounding, None)
        return dict(loss_grounding=self.grounding_weight * loss)

    def _grounding(
        self,
        images: torch.Tensor,
        captions: torch.Tensor,
        grounding: dict,
        unfused: tuple[tuple[torch.Tensor, ...], torch.Tensor] | None,
    ) -> torch.Tensor:
        """The alignment loss of the batch's groups with its phrases.

        images [B, 3, S, S]; captions [B, L] (what the fused blocks read); grounding: the collated
        ``label_map`` [B, S, S], ``phrase_text`` [B, P, L], ``phrase_labels`` [B, P]; unfused: the
        stage-1 forward's (assignments, normalised groups [B, G, D]) to score without fusion.
        """
        labels = grounding["phrase_labels"]
        if unfused is None:
            _, assignments, groups = self.model.encode_image_with_assignments(
                images, normalize=True, groups=True, text=captions
            )
        else:
            assignments, groups = unfused
        valid = labels >= 0
        # only real phrases through the text tower: padding rows would shift the projector's BatchNorm
        phrase_embeds = groups.new_zeros(*labels.shape, groups.shape[-1])
        if valid.any():
            phrase_embeds[valid] = self.model.encode_text(grounding["phrase_text"][valid], normalize=True).to(
                groups.dtype
            )
        patch = self.model.vision.patch_size
        grid = (images.shape[-2] // patch, images.shape[-1] // patch)
        if self.grounding_targets == "patch":
            shares = phrase_patch_shares(grounding["label_map"], labels, grid)
            with torch.autocast(device_type=images.device.type, enabled=False):
                return self.grounding_loss(
                    groups.float(),
                    phrase_embeds.float(),
                    assignment_product(assignments).float(),
                    shares,
                    valid,
                )
        targets = group_phrase_targets(
            assignments, grounding["label_map"], labels, grid, self.grounding_min_share
        )
        with torch.autocast(device_type=images.device.type, enabled=False):
            return self.grounding_loss(groups.float(), phrase_embeds.float(), targets, valid)
