"""Datasets for the zero-shot protocol: mmseg's own datasets plus path and label checks, and COCO-Object.

The ``Checked*`` classes are mmseg's datasets unchanged (same class lists, palettes, suffixes and
``reduce_zero_label``); they only turn a wrong ``data_root`` / folder / split file, or a folder with no
image-label pairs, into an error that says what was expected where, instead of a bare assertion. Each
label map is checked as it is loaded: one channel, the size of its image, and values that are class
indices or the ignore index (255); anything else stops with an ``InputError`` naming the file.
"""

from __future__ import annotations

import os.path as osp

import torch
from mmseg.datasets import (
    ADE20KDataset,
    BaseSegDataset,
    CityscapesDataset,
    COCOStuffDataset,
    PascalContextDataset,
    PascalContextDataset59,
    PascalVOCDataset,
)
from mmseg.registry import DATASETS

from groupvit.errors import InputError

__all__ = [
    "COCO_OBJECT_CLASSES",
    "COCOObjectDataset",
    "CheckedPascalContextDataset",
    "CheckedPascalContextDataset59",
    "CheckedPascalVOCDataset",
    "CheckedPascalVOC20Dataset",
    "CheckedCOCOStuffDataset",
    "CheckedCityscapesDataset",
    "CheckedADE20KDataset",
    "CheckedSegDataset",
    "check_label_map",
]

# The 80 COCO "thing" categories in COCO category-id order (the first 80 classes of COCO-Stuff).
COCO_OBJECT_CLASSES: tuple[str, ...] = ("background", *COCOStuffDataset.METAINFO["classes"][:80])
_COCO_OBJECT_PALETTE = [[0, 0, 0], *COCOStuffDataset.METAINFO["palette"][:80]]


class _PathCheckMixin:
    """Checks the configured paths before mmseg lists the samples, and the samples after."""

    def _layout_hint(self) -> str:
        img_dir = self.data_prefix.get("img_path", "")
        ann_dir = self.data_prefix.get("seg_map_path", "")
        hint = (
            f"{type(self).__name__} expects images '<name>{self.img_suffix}' in {img_dir!r} and label maps "
            f"'<name>{self.seg_map_suffix}' in {ann_dir!r}"
        )
        if self._uses_split_file():
            hint += f", with the sample names listed one per line in {self.ann_file!r}"
        return hint + " (see 'Preparing datasets' in README.md and tools/prepare_data/)."

    def _uses_split_file(self) -> bool:
        # mmseg joins an empty ann_file with data_root: a folder then means "every image in img_path".
        return bool(self.ann_file) and not osp.isdir(self.ann_file)

    def _check_paths(self) -> None:
        if self.data_root and not osp.isdir(self.data_root):
            raise FileNotFoundError(f"data_root {self.data_root!r} does not exist. {self._layout_hint()}")
        for key in ("img_path", "seg_map_path"):
            folder = self.data_prefix.get(key)
            if folder and not osp.isdir(folder):
                raise FileNotFoundError(f"{key} folder {folder!r} does not exist. {self._layout_hint()}")
        if self._uses_split_file() and not osp.isfile(self.ann_file):
            raise FileNotFoundError(f"split file {self.ann_file!r} does not exist. {self._layout_hint()}")

    def _check_samples(self, data_list: list[dict]) -> None:
        if not data_list:
            raise FileNotFoundError(f"no samples found. {self._layout_hint()}")
        missing = [
            d[k] for d in data_list for k in ("img_path", "seg_map_path") if k in d and not osp.isfile(d[k])
        ]
        if missing:
            shown = ", ".join(repr(p) for p in missing[:5])
            raise FileNotFoundError(
                f"{len(missing)} of the files listed for {len(data_list)} samples are missing, e.g. {shown}. "
                f"{self._layout_hint()}"
            )

    def load_data_list(self) -> list[dict]:
        self._check_paths()
        data_list = super().load_data_list()
        self._check_samples(data_list)
        return data_list


def check_label_map(
    label: torch.Tensor,
    metainfo: dict,
    num_classes: int,
    ignore_index: int = 255,
) -> None:
    """Raise an ``InputError`` naming the file when a loaded label map cannot be scored.

    Args:
        label: ``gt_sem_seg.data`` as ``PackSegInputs`` leaves it: [1, H, W] for a single-channel map
            (an RGB map arrives as [H, W, 3]).
        metainfo: the sample's metainfo (``seg_map_path``, ``img_path``, ``ori_shape``, ``reduce_zero_label``).
        num_classes: the dataset's class count; values must be < num_classes or ``ignore_index``.
    """
    path = metainfo.get("seg_map_path", "?")
    if label.ndim != 3 or label.shape[0] != 1:
        raise InputError(
            f"label map {path} has shape {tuple(label.shape)}, not one channel: label maps must hold one "
            "class index per pixel (8-bit grayscale 'L' or palette 'P' PNG), not RGB colours"
        )
    image_hw = tuple(metainfo.get("ori_shape", label.shape[-2:]))[:2]
    if tuple(label.shape[-2:]) != image_hw:
        h, w = label.shape[-2:]
        raise InputError(
            f"label map {path} is {h}x{w} (HxW) but its image {metainfo.get('img_path', '?')} is "
            f"{image_hw[0]}x{image_hw[1]}: each label map must have its image's size"
        )
    flat = label.flatten().long()
    # bincount: 1 ms on a 500x375 map where unique (a sort) takes 100 ms; maps are uint8, so >= 0
    values = (
        torch.unique(flat) if flat.numel() and flat.min() < 0 else torch.bincount(flat).nonzero().flatten()
    )
    bad = values[(values >= num_classes) & (values != ignore_index)]
    if len(bad):
        shift = 1 if metainfo.get("reduce_zero_label") else 0  # report the values as stored in the file
        shown = ", ".join(str(int(v) + shift) for v in bad[:10]) + (", ..." if len(bad) > 10 else "")
        raise InputError(
            f"label map {path} holds values {shown} outside the {num_classes} classes "
            f"(valid: 0..{num_classes - 1 + shift}{' with 0 ignored' if shift else ''}, and {ignore_index} = "
            "ignored): give one class name per label value in `classes`, or check ann_dir / seg_map_suffix"
        )


class _LabelCheckMixin:
    """Checks every label map a sample's pipeline loaded (see :func:`check_label_map`)."""

    def prepare_data(self, idx: int):
        results = super().prepare_data(idx)
        sample = results.get("data_samples") if isinstance(results, dict) else None
        if sample is not None and "gt_sem_seg" in sample:
            classes = self.metainfo.get("classes") or ()
            check_label_map(sample.gt_sem_seg.data, sample.metainfo, len(classes), self.ignore_index)
        return results


@DATASETS.register_module()
class CheckedPascalVOCDataset(_LabelCheckMixin, _PathCheckMixin, PascalVOCDataset):
    """PASCAL VOC 2012 (21 classes, background = 0, 255 ignored): mmseg's ``PascalVOCDataset``, path-checked."""


@DATASETS.register_module()
class CheckedPascalContextDataset(_LabelCheckMixin, _PathCheckMixin, PascalContextDataset):
    """PASCAL Context, 60 classes (background = 0): mmseg's ``PascalContextDataset``, path-checked."""


@DATASETS.register_module()
class CheckedPascalContextDataset59(_LabelCheckMixin, _PathCheckMixin, PascalContextDataset59):
    """PASCAL Context, 59 classes (background ignored): mmseg's ``PascalContextDataset59``, path-checked."""


@DATASETS.register_module()
class COCOObjectDataset(_LabelCheckMixin, _PathCheckMixin, BaseSegDataset):
    """COCO-Object: the 80 COCO thing classes plus background (81), from COCO instance annotations.

    Label maps (written by ``tools/prepare_data/coco_object.py``) hold 0 for background, ``i`` for
    ``COCO_OBJECT_CLASSES[i]`` and 255 for ignored pixels.
    """

    METAINFO = dict(classes=COCO_OBJECT_CLASSES, palette=_COCO_OBJECT_PALETTE)

    def __init__(
        self,
        img_suffix: str = ".jpg",
        seg_map_suffix: str = "_instanceTrainIds.png",
        reduce_zero_label: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs,
        )


@DATASETS.register_module()
class CheckedSegDataset(_LabelCheckMixin, _PathCheckMixin, BaseSegDataset):
    """A user's dataset in mmseg's layout (image folder + label-PNG folder); ``metainfo.classes`` is required."""

    def __init__(self, metainfo: dict | None = None, **kwargs) -> None:
        if not metainfo or not metainfo.get("classes"):
            raise InputError(
                "CheckedSegDataset needs class names: set `classes = (...)` in the config (one name per label "
                "value, label value i -> classes[i]) and pass `metainfo=dict(classes=classes)` to the dataset; "
                "see configs/groupvit/groupvit_s_custom.py."
            )
        super().__init__(metainfo=metainfo, **kwargs)


@DATASETS.register_module()
class CheckedPascalVOC20Dataset(_LabelCheckMixin, _PathCheckMixin, PascalVOCDataset):
    """PASCAL VOC 2012 without background (VOC20): label 0 ignored, ``i`` -> ``classes[i - 1]`` (reduce_zero_label)."""

    METAINFO = dict(
        classes=PascalVOCDataset.METAINFO["classes"][1:], palette=PascalVOCDataset.METAINFO["palette"][1:]
    )

    def __init__(self, reduce_zero_label: bool = True, **kwargs) -> None:
        super().__init__(reduce_zero_label=reduce_zero_label, **kwargs)


@DATASETS.register_module()
class CheckedCOCOStuffDataset(_LabelCheckMixin, _PathCheckMixin, COCOStuffDataset):
    """COCO-Stuff 164k, 171 classes (label maps ``*_labelTrainIds.png``): mmseg's ``COCOStuffDataset``, path-checked."""


@DATASETS.register_module()
class CheckedCityscapesDataset(_LabelCheckMixin, _PathCheckMixin, CityscapesDataset):
    """Cityscapes, 19 train ids: mmseg's ``CityscapesDataset``, path-checked."""


@DATASETS.register_module()
class CheckedADE20KDataset(_LabelCheckMixin, _PathCheckMixin, ADE20KDataset):
    """ADE20K, 150 classes (0 = 'other', ignored): mmseg's ``ADE20KDataset``, path-checked."""
