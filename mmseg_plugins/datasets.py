"""Datasets for the zero-shot protocol: mmseg's own datasets plus path checks, and COCO-Object.

The ``Checked*`` classes are mmseg's datasets unchanged (same class lists, palettes, suffixes and
``reduce_zero_label``); they only turn a wrong ``data_root`` / folder / split file, or a folder with no
image-label pairs, into an error that says what was expected where, instead of a bare assertion.
"""

from __future__ import annotations

import os.path as osp

from mmseg.datasets import (
    BaseSegDataset,
    COCOStuffDataset,
    PascalContextDataset,
    PascalContextDataset59,
    PascalVOCDataset,
)
from mmseg.registry import DATASETS

__all__ = [
    "COCO_OBJECT_CLASSES",
    "COCOObjectDataset",
    "CheckedPascalContextDataset",
    "CheckedPascalContextDataset59",
    "CheckedPascalVOCDataset",
    "CheckedSegDataset",
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


@DATASETS.register_module()
class CheckedPascalVOCDataset(_PathCheckMixin, PascalVOCDataset):
    """PASCAL VOC 2012 (21 classes, background = 0, 255 ignored): mmseg's ``PascalVOCDataset``, path-checked."""


@DATASETS.register_module()
class CheckedPascalContextDataset(_PathCheckMixin, PascalContextDataset):
    """PASCAL Context, 60 classes (background = 0): mmseg's ``PascalContextDataset``, path-checked."""


@DATASETS.register_module()
class CheckedPascalContextDataset59(_PathCheckMixin, PascalContextDataset59):
    """PASCAL Context, 59 classes (background ignored): mmseg's ``PascalContextDataset59``, path-checked."""


@DATASETS.register_module()
class COCOObjectDataset(_PathCheckMixin, BaseSegDataset):
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
class CheckedSegDataset(_PathCheckMixin, BaseSegDataset):
    """A user's dataset in mmseg's layout (image folder + label-PNG folder); ``metainfo.classes`` is required."""

    def __init__(self, metainfo: dict | None = None, **kwargs) -> None:
        if not metainfo or not metainfo.get("classes"):
            raise ValueError(
                "CheckedSegDataset needs class names: set `classes = (...)` in the config (one name per label "
                "value, label value i -> classes[i]) and pass `metainfo=dict(classes=classes)` to the dataset; "
                "see configs/groupvit/groupvit_s_custom.py."
            )
        super().__init__(metainfo=metainfo, **kwargs)
