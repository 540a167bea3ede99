"""The pictures of one :class:`~groupvit.app.engine.Prediction`: the overview and the selected view."""

from __future__ import annotations

import numpy as np
from PIL import Image

from groupvit.app.engine import Prediction
from groupvit.visualization.render import render

__all__ = ["PREDICTION_VIEW", "render_views", "view_names"]

PREDICTION_VIEW = "prediction"
# The selected view is drawn at least this many pixels on its short side (an integer, nearest-neighbour
# enlargement): on a 64 px synthetic scene the class names would otherwise cover the objects.
_VIEW_SHORT_SIDE = 320


def view_names(num_stages: int) -> list[str]:
    """The stage selector's choices: the labelled prediction, then ``stage 1``, ``stage 2``, ..."""
    return [PREDICTION_VIEW, *(f"stage {s}" for s in range(1, num_stages + 1))]


def render_views(prediction: Prediction, view: str, min_area: float) -> tuple[Image.Image, Image.Image]:
    """(overview, view).

    The overview is :func:`~groupvit.visualization.figure.overview` (input | groups of every stage |
    prediction | legend), as ``groupvit-demo`` writes it. The view is the prediction with class names
    on segments of at least ``min_area`` of the image (the demo's ``--min-area``; the largest segment
    of every class is always named) or the groups of one stage.
    """
    names = view_names(len(prediction.group_maps))
    if view not in names:
        raise ValueError(f"unknown view {view!r}; choose from {names}")
    common = dict(palette=prediction.palette, background_index=0, min_label_area=min_area)
    overview = render(
        prediction.image,
        prediction.labels,
        prediction.group_maps,
        prediction.class_names,
        ["overview"],
        **common,
    )["overview"]
    height, width = prediction.image.shape[:2]
    factor = max(1, -(-_VIEW_SHORT_SIDE // min(height, width)))
    enlarged = np.asarray(
        Image.fromarray(prediction.image).resize((width * factor, height * factor), Image.NEAREST)
    )
    mode = "input_pred_label" if view == PREDICTION_VIEW else "all_groups"
    pictures = render(
        enlarged, prediction.labels, prediction.group_maps, prediction.class_names, [mode], **common
    )
    return overview, pictures["input_pred_label" if view == PREDICTION_VIEW else view.replace(" ", "")]
