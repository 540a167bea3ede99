"""Group purity: how well a model's groups *could* segment, apart from how it names them.

Zero-shot segmentation (``groupvit.zero_shot``) can fail in two places: the groups mix objects
with each other or with the background, or pure groups get the wrong class name (or fall under
the background threshold). Scoring the groups against ground-truth labels tells the two apart:

- **purity oracle**: every group takes the most frequent ground-truth label of its pixels. Its
  mIoU bounds what any naming of these groups can reach.
- **oracle background**: groups whose most frequent label is background are background, every
  other group takes the model's own best class. The gap to the purity oracle is what the naming
  loses; the gap from here to the real protocol is what the background threshold loses.
- **assignment entropy**: how decided the soft patch-to-group map is. A token's entropy near
  ln G with the image's usage near ln G too is a soft map spread evenly over the groups: the hard
  argmax then rests on near-ties (and, in training, on the Gumbel noise).
- **token-grid oracle**: no model at all: every token of the input's patch grid holds the true
  class fractions of its cell, resized to the label map as the assignments are. Its mIoU bounds
  what any grouping of that grid can reach; on small objects it is the resolution's own limit.

Pure tensor functions; B images, H x W pixels, G groups, K classes (including background).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "confusion_matrix",
    "iou_per_class",
    "mean_iou",
    "group_label_counts",
    "groups_used",
    "purity_oracle_labels",
    "oracle_background_labels",
    "grid_oracle_labels",
    "assignment_entropy",
]


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """Pixel counts [K, K] (rows: ground truth, columns: prediction) of label maps of any equal shape.

    Pixels whose target is ``ignore_index`` (or outside [0, K)) are left out, as mmseg's IoUMetric does.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    keep = (target != ignore_index) & (target >= 0) & (target < num_classes)
    pairs = target[keep].long() * num_classes + pred[keep].long()
    return torch.bincount(pairs, minlength=num_classes * num_classes).view(num_classes, num_classes)


def iou_per_class(confusion: Tensor) -> Tensor:
    """IoU [K] in percent from a confusion matrix [K, K]; NaN for classes in neither map."""
    confusion = confusion.double()
    intersection = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - intersection
    return torch.where(union > 0, 100.0 * intersection / union.clamp(min=1), float("nan"))


def mean_iou(confusion: Tensor) -> float:
    """mIoU in percent over the classes present in either map (mmseg's nan-mean)."""
    return float(iou_per_class(confusion).nanmean())


def group_label_counts(
    group_ids: Tensor, labels: Tensor, num_groups: int, num_classes: int, ignore_index: int = 255
) -> Tensor:
    """How many pixels of each label every group holds.

    Args:
        group_ids: LongTensor [B, H, W], each pixel's group in [0, G).
        labels: LongTensor [B, H, W], ground truth in [0, K) or ``ignore_index``.
        num_groups: G.
        num_classes: K.
        ignore_index: label left out of the counts.

    Returns:
        LongTensor [B, G, K].
    """
    if group_ids.shape != labels.shape or group_ids.ndim != 3:
        raise ValueError(
            f"expected group_ids and labels [B, H, W] of one shape, got {tuple(group_ids.shape)} "
            f"and {tuple(labels.shape)}"
        )
    batch = group_ids.shape[0]
    keep = (labels != ignore_index) & (labels >= 0) & (labels < num_classes)
    image = torch.arange(batch, device=group_ids.device).view(batch, 1, 1).expand_as(group_ids)
    flat = (image * num_groups + group_ids) * num_classes + labels
    counts = torch.bincount(flat[keep].long(), minlength=batch * num_groups * num_classes)
    return counts.view(batch, num_groups, num_classes)


def groups_used(group_ids: Tensor, num_groups: int) -> Tensor:
    """LongTensor [B]: how many distinct groups own at least one pixel of each image [B, H, W]."""
    one_hot = torch.zeros(group_ids.shape[0], num_groups, dtype=torch.bool, device=group_ids.device)
    one_hot.scatter_(1, group_ids.flatten(1), True)
    return one_hot.sum(dim=1)


def purity_oracle_labels(group_ids: Tensor, counts: Tensor) -> Tensor:
    """Each pixel takes its group's most frequent ground-truth label: LongTensor [B, H, W].

    ``counts`` [B, G, K] from :func:`group_label_counts`; a group with only ignored pixels gets 0.
    """
    majority = counts.argmax(dim=-1)  # [B, G]
    return majority.gather(1, group_ids.flatten(1)).view_as(group_ids)


def oracle_background_labels(
    group_ids: Tensor, counts: Tensor, group_classes: Tensor, background_index: int = 0
) -> Tensor:
    """Ground truth decides background, the model names the rest: LongTensor [B, H, W].

    Args:
        group_ids: LongTensor [B, H, W].
        counts: [B, G, K] from :func:`group_label_counts`.
        group_classes: LongTensor [B, G], the model's label for every group (in [0, K), e.g. the
            argmax of its class affinity, shifted past the background channel).
        background_index: the background label.

    Returns:
        Groups whose most frequent label is background keep ``background_index``; the others
        take ``group_classes``.
    """
    majority = counts.argmax(dim=-1)
    named = torch.where(
        majority == background_index, torch.full_like(group_classes, background_index), group_classes
    )
    return named.gather(1, group_ids.flatten(1)).view_as(group_ids)


def grid_oracle_labels(
    labels: Tensor, grid_size: tuple[int, int], num_classes: int, ignore_index: int = 255
) -> Tensor:
    """The best labels a (h, w) token grid can give: LongTensor [B, H, W].

    Each cell's class fractions (area-averaged, ignored pixels left out) are resized bilinearly
    (align_corners=False) to the label map, as the zero-shot protocol resizes the soft
    assignments, and every pixel takes the largest.

    Args:
        labels: LongTensor [B, H, W], ground truth in [0, K) or ``ignore_index``.
        grid_size: (h, w), the input's patch grid (input size // patch size).
        num_classes: K.
        ignore_index: label left out of the fractions.
    """
    if labels.ndim != 3:
        raise ValueError(f"expected labels [B, H, W], got shape {tuple(labels.shape)}")
    keep = (labels != ignore_index) & (labels >= 0) & (labels < num_classes)
    one_hot = F.one_hot(torch.where(keep, labels, 0).long(), num_classes) * keep[..., None]
    fractions = F.adaptive_avg_pool2d(one_hot.permute(0, 3, 1, 2).float(), tuple(grid_size))  # [B, K, h, w]
    resized = F.interpolate(fractions, size=tuple(labels.shape[-2:]), mode="bilinear", align_corners=False)
    return resized.argmax(dim=1)


def assignment_entropy(group_map: Tensor) -> tuple[Tensor, Tensor]:
    """Entropies (nats) of a soft patch-to-group map [B, N, G] (rows over G sum to 1):
    (mean over patches of each patch's entropy [B], entropy of the image's group usage, the
    patches' mean row [B]). Both are ln G for a map spread evenly over the groups; their
    difference is the mutual information of patch and group within the image (0 when every patch
    has the same distribution, whatever it is)."""
    p = group_map.float().clamp_min(1e-12)
    token = -(p * p.log()).sum(dim=-1).mean(dim=-1)
    usage = p.mean(dim=1)
    return token, -(usage * usage.log()).sum(dim=-1)
