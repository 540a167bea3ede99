"""Pictures of predictions and per-stage groups, from plain arrays (numpy / PIL only).

Shared by ``groupvit-demo`` (groupvit/cli/demo.py), the mmseg visualiser and notebooks::

    from groupvit.visualization import render_result
    pictures = render_result(image_rgb, seg.predict(x), seg.group_maps(x), ["background", "cat"])
    pictures["overview"].save("overview.png")
"""

from .draw import blend, colorize, draw_groups, draw_labels, draw_prediction
from .figure import overview, resize_map
from .palette import BOUNDARY_COLOR, class_palette, group_palette
from .render import GROUP_MODES, MODES, output_names, render, render_result
from .segments import LabelPosition, boundary_mask, connected_components, label_positions

__all__ = [
    "BOUNDARY_COLOR",
    "GROUP_MODES",
    "MODES",
    "LabelPosition",
    "blend",
    "boundary_mask",
    "class_palette",
    "colorize",
    "connected_components",
    "draw_groups",
    "draw_labels",
    "draw_prediction",
    "group_palette",
    "label_positions",
    "output_names",
    "overview",
    "render",
    "render_result",
    "resize_map",
]
