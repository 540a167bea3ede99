"""GroupViT as an mmseg 1.x segmentor: a thin adapter around :class:`groupvit.ZeroShotSegmenter`.

The protocol (class embeddings, grouping, affinities, background threshold, sliding windows,
resizing of the scores) lives in :mod:`groupvit.zero_shot`; this module only

* builds the model from the config (``groupvit.create_model``),
* takes the class names from the evaluated dataset's metainfo (:class:`DatasetMetaHook`), applies the
  config's rename map and hands them to a lazily built ``ZeroShotSegmenter``,
* packs the scores into ``SegDataSample`` (``seg_logits`` and ``pred_sem_seg`` at the original size),
* loads checkpoints in the official, HF or our layout given to ``--checkpoint`` through
  ``groupvit.checkpoint`` (which says which keys do not fit otherwise).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.structures import PixelData
from mmseg.models.segmentors import BaseSegmentor
from mmseg.registry import HOOKS, MODELS
from mmseg.structures import SegDataSample
from torch import Tensor

import groupvit
from groupvit.class_file import read_class_file
from groupvit.class_names import DATASET_BG_THRESH, DATASET_CLASS_RENAMES
from groupvit.config import RefineConfig
from groupvit.errors import InputError
from groupvit.sliding_window import resize_scores
from groupvit.zero_shot import ZeroShotSegmenter

__all__ = ["GROUP_MAPS_FIELD", "DatasetMetaHook", "GroupViTSegmentor"]

# SegDataSample field of the per-stage group maps, PixelData(data=LongTensor [S, H0, W0])
GROUP_MAPS_FIELD = "group_maps"

# Usual names of label 0 when it is background; any other name draws a warning with background=True.
_BACKGROUND_NAMES = frozenset({"background", "_background_", "bg", "others", "other", "unlabeled", "void"})


@MODELS.register_module()
class GroupViTSegmentor(BaseSegmentor):
    """Zero-shot semantic segmentation with GroupViT (evaluation only).

    Args:
        model_name: ``groupvit`` preset, see ``groupvit.list_models()``.
        model_overrides: config overrides for ``groupvit.create_model`` (dotted keys or nested dicts).
        checkpoint: initial weights for ``groupvit.create_model`` (path, URL or release tag); ``--checkpoint``
            / ``load_from`` load over them (any layout, see :func:`_fit_checkpoint`).
        class_names: class names in label order (background first when ``background``); None takes
            them from the evaluated dataset's ``metainfo['classes']`` (set by :class:`DatasetMetaHook`).
        benchmark: a benchmark of ``groupvit.class_names`` (``"voc"``, ``"context"``, ``"coco_object"``)
            whose class renames and background threshold are the defaults of the next two arguments
            (the one source of the paper's protocol values); None: no renames and the preset's
            ``config.inference.bg_thresh``.
        class_renames: dataset name -> name fed to the text encoder, e.g. ``{"tvmonitor": "monitor"}``;
            None: the benchmark's ``DATASET_CLASS_RENAMES`` (none without a benchmark).
        class_file: a class file (:mod:`groupvit.class_file`, ``name: syn1, syn2`` per line, label order)
            whose texts replace the class names; with ``background=False`` its label-0 line (say
            ``background: sky, wall``) is scored as a text class instead of by the threshold.
        templates: prompt template set (``"simple"``, ``"subset"``, ``"imagenet"``) or a list of templates.
        background: label 0 is background, scored by thresholding (not by a text embedding).
        bg_thresh: background threshold; None: the benchmark's ``DATASET_BG_THRESH`` (0.95 VOC /
            COCO-Object, 0.35 PASCAL Context in the paper), else the preset's ``config.inference``.
        top_k: image-level classes kept per image.
        prompts: a prompt file of :mod:`groupvit.prompt_tuning` (``.safetensors``, tuned on this
            model's weights for these class names) whose class embeddings replace the templates'
            (``mim test ... --cfg-options model.prompts=FILE``).
        test_cfg: ``dict(mode="whole")`` or ``dict(mode="slide", crop_size=(h, w), stride=(h, w))``, plus
            any :class:`groupvit.config.RefineConfig` field (``pamr_iterations``, ``pamr_dilations``,
            ``soft_groups``, ``scales``, ``flip``, ``shifts``): test-time refinements, all off when absent.
        data_preprocessor: ``SegDataPreProcessor`` config (ImageNet mean / std, RGB).
    """

    def __init__(
        self,
        model_name: str = "groupvit_s",
        model_overrides: dict | None = None,
        checkpoint: str | None = None,
        class_names: Sequence[str] | None = None,
        benchmark: str | None = None,
        class_renames: Mapping[str, str] | None = None,
        class_file: str | None = None,
        templates: str | Sequence[str] = "simple",
        background: bool = True,
        bg_thresh: float | None = None,
        top_k: int = 5,
        prompts: str | None = None,
        test_cfg: dict | None = None,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.model_name = model_name
        self.model = groupvit.create_model(model_name, checkpoint=checkpoint, **dict(model_overrides or {}))
        self.test_cfg = _check_test_cfg(test_cfg)
        self.class_names = tuple(class_names) if class_names else None
        if benchmark is not None and benchmark not in DATASET_BG_THRESH:
            raise InputError(
                f"model.benchmark {benchmark!r} is unknown; choose from {sorted(DATASET_BG_THRESH)} or None"
            )
        if class_renames is None:
            class_renames = DATASET_CLASS_RENAMES[benchmark] if benchmark else {}
        if bg_thresh is None:
            bg_thresh = DATASET_BG_THRESH[benchmark] if benchmark else self.model.config.inference.bg_thresh
        self.benchmark = benchmark
        self.class_renames = dict(class_renames)
        self.class_file = class_file
        self.templates = templates
        self.background = background
        self.bg_thresh = float(bg_thresh)
        self.top_k = top_k
        self.prompts = prompts
        self.align_corners = False
        self._dataset_meta: dict | None = None
        self._segmenter: ZeroShotSegmenter | None = None
        # set by GroupViTVisualizationHook while it draws: predict() adds the samples' group maps
        self.with_group_maps = False
        self.register_load_state_dict_pre_hook(_fit_checkpoint)

    # -- class names ---------------------------------------------------------------------------------

    @property
    def dataset_meta(self) -> dict | None:
        """Metainfo of the evaluated dataset (set by :class:`DatasetMetaHook` before val / test)."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, meta: Mapping | None) -> None:
        self._dataset_meta = dict(meta) if meta is not None else None
        self._segmenter = None

    def text_class_names(self) -> tuple[str, ...]:
        """Names fed to the text encoder: the label-order names, renamed, without the background."""
        names = self.class_names or (self._dataset_meta or {}).get("classes")
        if not names:
            raise ValueError(
                "GroupViTSegmentor has no class names: they come from the evaluated dataset's "
                "metainfo['classes'] through custom_hooks=[dict(type='DatasetMetaHook')] (see "
                "configs/_base_/default_runtime.py), or set model.class_names in the config."
            )
        if self.background and names[0].strip().lower() not in _BACKGROUND_NAMES:
            warnings.warn(
                f"GroupViTSegmentor(background=True) treats label 0 ({names[0]!r}) as background and never "
                "asks the text encoder for it; set model.background=False if every label is a class",
                stacklevel=2,
            )
        names = tuple(self.class_renames.get(name, name) for name in names)
        return names[1:] if self.background else names

    def text_synonyms(self) -> tuple[tuple[str, ...], ...] | None:
        """The texts of each class from ``class_file`` (in :meth:`text_class_names` order), or None."""
        if self.class_file is None:
            return None
        vocabulary = read_class_file(self.class_file)
        labels = self.class_names or (self._dataset_meta or {}).get("classes")
        if labels and len(labels) != len(vocabulary.names):
            raise InputError(
                f"class file {self.class_file} has {len(vocabulary.names)} classes, the dataset "
                f"{len(labels)}: one line per label, in label order"
            )
        if self.background and len(vocabulary.synonyms[0]) > 1:
            raise InputError(
                f"class file {self.class_file} gives label 0 ({vocabulary.names[0]!r}) synonyms, which "
                "score it as a text class: set model.background=False (or drop them to keep the threshold)"
            )
        return vocabulary.synonyms[1:] if self.background else vocabulary.synonyms

    @property
    def segmenter(self) -> ZeroShotSegmenter:
        """The ``groupvit`` zero-shot helper, built on first use (class embeddings are cached there)."""
        if self._segmenter is None:
            mode = self.test_cfg["mode"]
            refine = {key: value for key, value in self.test_cfg.items() if key in _REFINE_KEYS}
            self._segmenter = ZeroShotSegmenter(
                self.model,
                self.text_class_names(),
                templates=self.templates,
                synonyms=self.text_synonyms(),
                refine=RefineConfig(**refine),
                background=self.background,
                bg_thresh=self.bg_thresh,
                top_k=self.top_k,
                mode=mode,
                prompts=self.segmenter_prompts(),
                **(
                    {"window": self.test_cfg["crop_size"], "stride": self.test_cfg["stride"]}
                    if mode == "slide"
                    else {}
                ),
            )
        return self._segmenter

    def segmenter_prompts(self) -> Any:
        """Tuned prompts for the segmenter (a file or a ``groupvit.prompts.PromptSet``), or None."""
        return self.prompts

    # -- mmseg interface ------------------------------------------------------------------------------

    def extract_feat(self, inputs: Tensor) -> Any:
        """inputs [B, 3, H, W] (normalised) -> ``groupvit.SegmentationFeatures``."""
        return self.model.forward_segmentation(inputs)

    def encode_decode(self, inputs: Tensor, batch_img_metas: list[dict] | None = None) -> Tensor:
        """inputs [B, 3, H, W] (normalised) -> scores [B, C, H, W] at the input size."""
        return self.segmenter.predict(inputs).scores

    def _forward(self, inputs: Tensor, data_samples: list | None = None) -> Tensor:
        return self.encode_decode(inputs)

    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        raise NotImplementedError(
            "GroupViTSegmentor is evaluation-only (zero-shot); train with GroupViTTrainModel instead"
        )

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples: list[SegDataSample] | None = None) -> list[SegDataSample]:
        """Segment a batch; returns ``SegDataSample``s with ``seg_logits`` [C, H0, W0] and ``pred_sem_seg``
        [1, H0, W0] at each image's original size (H0, W0). With :attr:`with_group_maps` (while
        ``--show-dir`` draws), ``pred_sem_seg`` and the per-stage ``group_maps`` [S, H0, W0] come from
        one forward pass (``ZeroShotSegmenter.predict_with_groups``: the same labels, no dense scores)
        and there are no ``seg_logits``.

        Images of a batch are segmented one by one on their own (unpadded) extent, so batching does
        not change the sliding windows.
        """
        if data_samples is None:
            size = tuple(inputs.shape[-2:])
            data_samples = [SegDataSample(metainfo=dict(img_shape=size, ori_shape=size)) for _ in inputs]
        for image, sample in zip(inputs, data_samples):
            meta = sample.metainfo
            height, width = meta.get("img_shape", image.shape[-2:])[:2]
            flip = (
                (-1 if meta.get("flip_direction") == "horizontal" else -2)
                if meta.get("flip", False)
                else None
            )
            if self.with_group_maps:
                grouped = self.segmenter.predict_with_groups(
                    image[None, :, :height, :width], tuple(meta.get("ori_shape", (height, width))[:2])
                )
                maps = torch.cat([grouped.labels, *grouped.group_maps])  # [1 + S, H0, W0]
                maps = maps if flip is None else maps.flip(dims=(flip,))
                sample.set_data({"pred_sem_seg": PixelData(data=maps[:1])})
                sample.set_field(PixelData(data=maps[1:]), GROUP_MAPS_FIELD)
                continue
            scores = self.segmenter.predict(image[None, :, :height, :width]).scores
            if flip is not None:
                scores = scores.flip(dims=(flip,))
            scores = resize_scores(scores, tuple(meta.get("ori_shape", (height, width))[:2]))[0]
            sample.set_data(
                {
                    "seg_logits": PixelData(data=scores),
                    "pred_sem_seg": PixelData(data=scores.argmax(dim=0, keepdim=True)),
                }
            )
        return data_samples


@HOOKS.register_module()
class DatasetMetaHook(Hook):
    """Gives the model the evaluated dataset's metainfo (``model.dataset_meta``) before val and test."""

    def before_val(self, runner: Any) -> None:
        self._set_meta(runner, runner.val_loop.dataloader.dataset)

    def before_test(self, runner: Any) -> None:
        self._set_meta(runner, runner.test_loop.dataloader.dataset)

    @staticmethod
    def _set_meta(runner: Any, dataset: Any) -> None:
        meta = getattr(dataset, "metainfo", None) or {}
        if not meta.get("classes"):
            raise ValueError(
                f"dataset {type(dataset).__name__} has no class names (metainfo['classes']): set "
                "`metainfo=dict(classes=(...))` on the dataset in the config, label value i -> classes[i]"
            )
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.dataset_meta = copy.deepcopy(meta)


_REFINE_KEYS = frozenset(f.name for f in dataclasses.fields(RefineConfig))


def _check_test_cfg(test_cfg: dict | None) -> dict:
    cfg = {"mode": "whole", **(test_cfg or {})}
    unknown = set(cfg) - {"mode", "crop_size", "stride"} - _REFINE_KEYS
    if unknown:
        raise InputError(
            f"unknown test_cfg keys {sorted(unknown)}: valid are mode, crop_size, stride and "
            f"{', '.join(sorted(_REFINE_KEYS))}"
        )
    RefineConfig(**{key: value for key, value in cfg.items() if key in _REFINE_KEYS})  # checks the values
    if cfg["mode"] not in ("whole", "slide"):
        raise ValueError(f"test_cfg.mode must be 'whole' or 'slide', got {cfg['mode']!r}")
    if cfg["mode"] == "slide" and not {"crop_size", "stride"} <= cfg.keys():
        raise ValueError("test_cfg with mode='slide' needs crop_size=(h, w) and stride=(h, w)")
    for key in ("crop_size", "stride"):
        if key in cfg:
            cfg[key] = tuple(cfg[key]) if isinstance(cfg[key], (list, tuple)) else cfg[key]
    return cfg


def _fit_checkpoint(
    module: GroupViTSegmentor,
    state_dict: dict,
    prefix: str,
    local_metadata: dict,
    strict: bool,
    missing_keys: list,
    unexpected_keys: list,
    error_msgs: list,
) -> None:
    """``load_state_dict`` pre-hook: load a GroupViT checkpoint in any layout through ``groupvit``.

    The segmentor's entries (the official release's ``{"model": {...}, ...}`` or its bare state dict,
    HF transformers' ``GroupViTModel``, our ``GroupViT`` state dict, or this segmentor's own
    ``model.``-prefixed entries) go to :func:`groupvit.checkpoint.load_checkpoint`, which converts
    the layout, resamples the position embedding and raises an error listing the missing,
    unexpected and mis-shaped keys when the file does not fit (mmengine would only warn and go on).
    The loaded weights are then handed back as ``model.*`` entries, so the caller's own loading
    finds exactly the keys it expects.
    """
    from groupvit.checkpoint import CheckpointMismatchError, load_checkpoint

    entries = {
        key[len(prefix) :]: state_dict.pop(key) for key in [k for k in state_dict if k.startswith(prefix)]
    }
    try:
        load_checkpoint(module.model, entries, model_name=module.model_name)
    except CheckpointMismatchError as error:
        # the loader names the preset the weights look like: say how to pick it, in one line
        fits = re.search(r"\(like preset '(\w+)'\)", str(error))
        if fits is None or fits.group(1) == module.model_name:
            raise
        raise InputError(
            f"the checkpoint is for preset {fits.group(1)!r}, not model.model_name={module.model_name!r}: "
            f"add --cfg-options model.model_name={fits.group(1)}"
        ) from None
    state_dict.update({f"{prefix}model.{key}": value for key, value in module.model.state_dict().items()})
    module._segmenter = None
