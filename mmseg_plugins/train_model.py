"""GroupViT training model for mmengine's runner (``mim train mmseg CONFIG``)."""

from __future__ import annotations

from typing import Any

import torch
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS

from groupvit.losses import (
    ContrastiveLoss,
    GroupBalanceLoss,
    MultiLabelContrastiveLoss,
    NounGroupLoss,
    UnclaimedGroupLoss,
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
    ``loss_noun_group`` / ``loss_unclaimed_group`` / ``loss_group_balance`` when switched on);
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
        unclaimed_group_weight: weight of ``groupvit.losses.UnclaimedGroupLoss`` (groups that
            claim no prompt of their image stay equally far from every prompt of the batch; 0 =
            off, as in the paper). Logged as ``loss_unclaimed_group``.
        group_balance_weight: weight of ``groupvit.losses.GroupBalanceLoss`` (confident, evenly
            used group assignments; 0 = off, as in the paper). Logged as ``loss_group_balance``.
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
        unclaimed_group_weight: float = 0.0,
        group_balance_weight: float = 0.0,
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
        self.unclaimed_group_weight = unclaimed_group_weight
        self.unclaimed_group_loss = UnclaimedGroupLoss()
        self.group_balance_weight = group_balance_weight
        self.group_balance_loss = GroupBalanceLoss()
        if grad_checkpointing:
            self.model.set_grad_checkpointing(True)

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
        text = data_samples["text"]  # [B, 1 + K, L]
        batch, rows = text.shape[:2]
        # ids of the full rows, so that equal texts get equal ids in every process
        row_ids = text_ids(text) if self.duplicate_positives or self.unclaimed_group_weight > 0 else None
        ids = row_ids if self.duplicate_positives else None  # [B, 1 + K]
        # One vision forward: pooled embedding, assignments (balance loss) and, when a loss scores
        # groups, the projected final groups.
        use_groups = rows > 1 and (
            self.group_multi_label or self.noun_group_weight > 0 or self.unclaimed_group_weight > 0
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
                if self.unclaimed_group_weight > 0:
                    losses["loss_unclaimed_group"] = self.unclaimed_group_weight * self.unclaimed_group_loss(
                        group_embeds, text_embeds[:, 1:], row_ids[:, 1:], ml_scale.float()
                    )
            if self.group_balance_weight > 0:
                losses["loss_group_balance"] = self.group_balance_weight * self.group_balance_loss(
                    assignments
                )
        losses["logit_scale"] = scale.detach()
        losses["multi_label_logit_scale"] = ml_scale.detach()
        return losses
