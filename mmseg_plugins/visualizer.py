"""mmseg visualiser and hook that also draw GroupViT's per-stage groups (``mim test ... --show-dir DIR``).

Turn them on in a config::

    visualizer = dict(type="GroupViTVisualizer", vis_backends=[dict(type="LocalVisBackend")],
                      name="visualizer", alpha=0.5, modes=("all_groups",))
    default_hooks = dict(..., visualization=dict(type="GroupViTVisualizationHook", draw=False, interval=1))

``--show-dir`` then writes, per drawn image, mmseg's prediction overlay ``<name>_<step>.png`` and one
picture per extra mode (``all_groups``: ``<name>_stage1_<step>.png``, ``<name>_stage2_<step>.png``)
under ``DIR/vis_data/vis_image/`` (mmengine's ``LocalVisBackend`` layout), or next to ``out_file``.

Per-stage group maps travel on the ``SegDataSample`` as ``group_maps = PixelData(data=LongTensor
[S, H0, W0])``: one channel per grouping stage, hard group ids at the original image size. While the
hook draws, it asks the segmentor for them (``GroupViTSegmentor.with_group_maps``), which then takes
labels and groups from the same forward pass (``ZeroShotSegmenter.predict_with_groups``). Drawing
itself is :func:`groupvit.visualization.render`.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Sequence
from typing import Any

import mmcv
import numpy as np
from mmengine.dist import master_only
from mmengine.model import is_model_wrapper
from mmseg.engine.hooks import SegVisualizationHook
from mmseg.registry import HOOKS, VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from groupvit.visualization import GROUP_MODES, MODES, class_palette, render
from mmseg_plugins.segmentor import GROUP_MAPS_FIELD

__all__ = ["GroupViTVisualizationHook", "GroupViTVisualizer"]

_LABEL_MODES = frozenset({"pred", "input_pred", "input_pred_label", "overview"})


@VISUALIZERS.register_module()
class GroupViTVisualizer(SegLocalVisualizer):
    """``SegLocalVisualizer`` that also saves GroupViT pictures of each sample.

    Args:
        name: instance name (mmengine keeps one visualiser per name).
        modes: extra pictures, any of :data:`groupvit.visualization.MODES` (default: the groups of
            every stage). Group modes are skipped for samples without ``group_maps``, prediction
            modes for samples without ``pred_sem_seg``.
        **kwargs: ``SegLocalVisualizer`` arguments (``vis_backends``, ``save_dir``, ``alpha``, ...).
    """

    def __init__(
        self,
        name: str = "visualizer",
        modes: Sequence[str] = ("all_groups",),
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise ValueError(f"GroupViTVisualizer: unknown mode(s) {unknown}; choose from {list(MODES)}")
        self.modes = tuple(modes)

    @property
    def dataset_meta(self) -> dict | None:
        """The dataset's metainfo, its palette replaced by :func:`groupvit.visualization.class_palette`
        (no greys, no near-blacks: mmseg's VOC palette draws "car" grey, and a dataset without a
        palette gets random colours), so that mmseg's overlay and the group pictures agree."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, meta: dict | None) -> None:
        meta = dict(meta) if meta is not None else None
        if meta is not None and meta.get("classes"):
            meta["palette"] = class_palette(len(meta["classes"])).tolist()
        self._dataset_meta = meta

    @master_only
    def add_datasample(
        self,
        name: str,
        image: np.ndarray,
        data_sample: SegDataSample | None = None,
        draw_gt: bool = True,
        draw_pred: bool = True,
        show: bool = False,
        wait_time: float = 0,
        out_file: str | None = None,
        step: int = 0,
        with_labels: bool | None = True,
    ) -> None:
        """mmseg's overlay (ground truth | prediction), then the extra pictures of ``modes``."""
        super().add_datasample(
            name, image, data_sample, draw_gt, draw_pred, show, wait_time, out_file, step, with_labels
        )
        if data_sample is None:
            return
        for key, picture in self.render_extras(image, data_sample).items():
            rgb = np.asarray(picture.convert("RGB"))
            if out_file is not None:
                root, ext = osp.splitext(out_file)
                mmcv.imwrite(mmcv.rgb2bgr(rgb), f"{root}_{key}{ext or '.png'}")
            else:
                self.add_image(f"{name}_{key}", rgb, step)

    def render_extras(self, image: np.ndarray, data_sample: SegDataSample) -> dict[str, Any]:
        """``{name: PIL image}`` of the modes this sample has the data for."""
        group_maps = data_sample.get(GROUP_MAPS_FIELD)
        pred = data_sample.get("pred_sem_seg")
        modes = [
            m
            for m in self.modes
            if (m not in GROUP_MODES or group_maps is not None)
            and (m not in _LABEL_MODES or pred is not None)
        ]
        if not modes:
            return {}
        labels = pred.data[0] if pred is not None else np.zeros(image.shape[:2], dtype=np.int64)
        classes = list(self.dataset_meta.get("classes") or [])
        palette = self.dataset_meta.get("palette")
        background = 0 if classes and str(classes[0]).lower() == "background" else None
        return render(
            image,
            labels,
            list(group_maps.data) if group_maps is not None else [],
            classes,
            modes,
            palette=np.asarray(palette, dtype=np.uint8) if palette is not None else None,
            background_index=background,
            alpha=self.alpha,
        )


@HOOKS.register_module()
class GroupViTVisualizationHook(SegVisualizationHook):
    """``SegVisualizationHook`` that, while it draws, has a ``GroupViTSegmentor`` put its per-stage
    ``group_maps`` on the samples (from the forward pass of the prediction)."""

    def before_val(self, runner: Any) -> None:
        _set_group_maps(runner, self.draw)

    def before_test(self, runner: Any) -> None:
        _set_group_maps(runner, self.draw)

    def after_val(self, runner: Any) -> None:
        _set_group_maps(runner, False)

    def after_test(self, runner: Any) -> None:
        _set_group_maps(runner, False)


def _set_group_maps(runner: Any, on: bool) -> None:
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    if hasattr(model, "with_group_maps"):  # other segmentors are drawn without groups
        model.with_group_maps = on
