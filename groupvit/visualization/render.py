"""Named pictures of one image from the zero-shot output: what the demo and the mmseg visualiser save."""

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from .draw import draw_groups, draw_labels, draw_prediction
from .figure import overview, resize_map
from .palette import class_palette

MODES: tuple[str, ...] = (
    "input",
    "pred",
    "input_pred",
    "input_pred_label",
    "all_groups",
    "first_group",
    "final_group",
    "overview",
)
GROUP_MODES = frozenset({"all_groups", "first_group", "final_group", "overview"})


def as_array(value: Any) -> np.ndarray:
    """numpy view of a numpy array, a PIL image or a (CPU or GPU) torch tensor."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def output_names(modes: Iterable[str], num_stages: int) -> list[str]:
    """The keys ``render`` returns for ``modes``: ``all_groups`` gives ``stage1``, ``stage2``, ..."""
    names: list[str] = []
    for mode in modes:
        if mode == "all_groups":
            names.extend(f"stage{s}" for s in range(1, num_stages + 1))
        else:
            names.append(mode)
    return names


def palette_image(labels: np.ndarray, palette: np.ndarray) -> Image.Image:
    """Label map as a palette ("P") PNG-ready image; RGB when there are more than 256 classes."""
    if len(palette) > 256:
        return Image.fromarray(np.asarray(palette, dtype=np.uint8)[labels])
    picture = Image.fromarray(labels.astype(np.uint8), mode="P")
    picture.putpalette(np.asarray(palette, dtype=np.uint8).ravel().tolist())
    return picture


def render(
    image: Any,
    labels: Any,
    group_maps: Sequence[Any],
    class_names: Sequence[str],
    modes: Iterable[str] = MODES,
    palette: np.ndarray | None = None,
    background_index: int | None = 0,
    alpha: float = 0.5,
    min_label_area: float = 0.0,
) -> dict[str, Image.Image]:
    """Draw the pictures of ``modes`` for one image.

    Args:
        image: ``[H, W, 3]`` uint8 RGB (array, PIL image or tensor).
        labels: ``[h, w]`` class ids (``SegmentationResult.labels[i]``); fitted to ``H, W`` (nearest).
        group_maps: per grouping stage ``[h, w]`` group ids (``ZeroShotSegmenter.group_maps(...)[s][i]``).
        class_names: name of every class id, background included when ``background_index`` is set.
        modes: any of ``MODES``.
        palette: ``[C, 3]`` class colours; VOC colour map by default (black skipped without background).
        background_index: class left unblended and unlabelled (None: none).
        alpha: weight of the class colours in the blends.
        min_label_area: ``input_pred_label`` names only segments of at least this fraction of the
            image (and the largest segment of every class).

    Returns:
        ``{name: PIL image}`` in the order of ``output_names(modes, len(group_maps))``;
        every picture is ``H x W`` except ``overview``.
    """
    modes = list(modes)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown visualisation mode(s) {unknown}; choose from {list(MODES)}")
    if GROUP_MODES.intersection(modes) and not group_maps:
        raise ValueError(f"modes {sorted(GROUP_MODES.intersection(modes))} need at least one group map")

    image = as_array(image).astype(np.uint8)
    size = image.shape[:2]
    labels = resize_map(as_array(labels).astype(np.int64), size)
    groups = [resize_map(as_array(g).astype(np.int64), size) for g in group_maps]
    if palette is None:  # VOC colours; without a background class, skip its black
        palette = class_palette(len(class_names) + int(background_index is None))[
            int(background_index is None) :
        ]
    palette = np.asarray(palette, dtype=np.uint8)

    pictures: dict[str, np.ndarray | Image.Image] = {}
    for mode in modes:
        if mode == "input":
            pictures["input"] = image
        elif mode == "pred":
            pictures["pred"] = palette_image(labels, palette)
        elif mode == "input_pred":
            pictures["input_pred"] = draw_prediction(image, labels, palette, alpha, background_index)
        elif mode == "input_pred_label":
            blended = draw_prediction(image, labels, palette, alpha, background_index)
            pictures["input_pred_label"] = draw_labels(
                blended,
                labels,
                class_names,
                palette,
                ignore_index=background_index,
                min_area_fraction=min_label_area,
            )
        elif mode == "all_groups":
            for stage, group_map in enumerate(groups, start=1):
                pictures[f"stage{stage}"] = draw_groups(image, group_map)
        elif mode == "first_group":
            pictures["first_group"] = draw_groups(image, groups[0])
        elif mode == "final_group":
            pictures["final_group"] = draw_groups(image, groups[-1])
        elif mode == "overview":
            pictures["overview"] = overview(image, groups, labels, class_names, palette, background_index)
    return {k: v if isinstance(v, Image.Image) else Image.fromarray(v) for k, v in pictures.items()}


def render_result(
    image: Any,
    result: Any,
    group_maps: Sequence[Any],
    class_names: Sequence[str],
    index: int = 0,
    **kwargs: Any,
) -> dict[str, Image.Image]:
    """``render`` for image ``index`` of a batch: ``result`` is a ``SegmentationResult``,
    ``group_maps`` the tuple from ``ZeroShotSegmenter.group_maps`` (``[B, H, W]`` per stage)."""
    return render(image, result.labels[index], [g[index] for g in group_maps], class_names, **kwargs)
