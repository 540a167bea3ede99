"""Geometry of label maps: boundaries, connected segments and where to write their names.

All functions take an integer label map ``[H, W]`` (class ids or group ids) and
return numpy arrays; nothing here draws.
"""

from typing import NamedTuple

import numpy as np
from scipy import ndimage


class LabelPosition(NamedTuple):
    """Where to write the name of one connected segment."""

    label: int  # class (or group) id of the segment
    y: int  # row of the most interior pixel of the segment
    x: int  # column of that pixel
    area: int  # pixels in the segment


def boundary_mask(label_map: np.ndarray, thickness: int = 1) -> np.ndarray:
    """``[H, W]`` bool, True on pixels whose right or lower neighbour has another label.

    A cheap neighbour difference: one pixel wide, on one side of each boundary;
    ``thickness > 1`` grows it by that many pixels in total (4-neighbour dilation).
    """
    edge = np.zeros(label_map.shape, dtype=bool)
    edge[:, :-1] |= label_map[:, :-1] != label_map[:, 1:]
    edge[:-1, :] |= label_map[:-1, :] != label_map[1:, :]
    for _ in range(max(0, thickness - 1)):
        grown = edge.copy()
        grown[1:, :] |= edge[:-1, :]
        grown[:, 1:] |= edge[:, :-1]
        edge = grown
    return edge


def connected_components(label_map: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected segments of equal label: ``(ids [H, W] int64 in [0, n), n)`` (scipy's labelling
    of each value's mask, numbered on)."""
    label_map = np.asarray(label_map)
    ids = np.zeros(label_map.shape, dtype=np.int64)
    count = 0
    for value in np.unique(label_map):
        comp, n = ndimage.label(label_map == value)  # 4-connectivity by default
        mask = comp > 0
        ids[mask] = comp[mask] - 1 + count
        count += int(n)
    return ids, count


def interior_depth(label_map: np.ndarray, max_depth: int) -> np.ndarray:
    """``[H, W]`` int: 4-neighbour steps to the nearest other label or the image border, capped.

    Computed by eroding every segment at once ``max_depth`` times; the cap keeps the
    cost bounded on large images (deeper than the text being placed is deep enough).
    """
    height, width = label_map.shape
    depth = np.zeros((height, width), dtype=np.int64)
    alive = np.ones((height, width), dtype=bool)
    same_right = label_map[:, :-1] == label_map[:, 1:]
    same_down = label_map[:-1, :] == label_map[1:, :]
    for _ in range(max_depth):
        nxt = np.zeros_like(alive)
        inner = alive[1:-1, 1:-1].copy()
        inner &= alive[1:-1, 2:] & same_right[1:-1, 1:]
        inner &= alive[1:-1, :-2] & same_right[1:-1, :-1]
        inner &= alive[2:, 1:-1] & same_down[1:, 1:-1]
        inner &= alive[:-2, 1:-1] & same_down[:-1, 1:-1]
        nxt[1:-1, 1:-1] = inner
        if not nxt.any():
            break
        depth += nxt
        alive = nxt
    return depth


def label_positions(
    label_map: np.ndarray,
    ignore_index: int | None = 0,
    min_area: int = 1,
    max_depth: int = 32,
) -> list[LabelPosition]:
    """One position per connected segment, at its most interior pixel.

    Segments smaller than ``min_area`` pixels are skipped unless they are the largest
    segment of their label, so every label present (except ``ignore_index``) gets at
    least one position. Ties in depth go to the pixel nearest the segment's centroid.
    """
    label_map = np.asarray(label_map)
    ids, count = connected_components(label_map)
    if count == 0:
        return []
    flat_ids = ids.ravel()
    area = np.bincount(flat_ids, minlength=count)
    rows, cols = np.indices(label_map.shape)
    cy = np.bincount(flat_ids, weights=rows.ravel(), minlength=count) / area
    cx = np.bincount(flat_ids, weights=cols.ravel(), minlength=count) / area
    depth = interior_depth(label_map, max_depth).ravel()
    dist2 = (rows.ravel() - cy[flat_ids]) ** 2 + (cols.ravel() - cx[flat_ids]) ** 2
    # Best pixel per segment: sort by (segment, depth, -distance), take each segment's last.
    order = np.lexsort((-dist2, depth, flat_ids))
    last = np.r_[flat_ids[order][1:] != flat_ids[order][:-1], True]
    best_pixel = order[last]  # indexed by segment id (segments are 0..count-1, all non-empty)
    seg_label = label_map.ravel()[best_pixel]

    largest: dict[int, int] = {}
    for seg in np.argsort(-area, kind="stable"):
        largest.setdefault(int(seg_label[seg]), int(seg))
    keep_largest = set(largest.values())

    positions = []
    for seg in range(count):
        label = int(seg_label[seg])
        if ignore_index is not None and label == ignore_index:
            continue
        if area[seg] < min_area and seg not in keep_largest:
            continue
        y, x = divmod(int(best_pixel[seg]), label_map.shape[1])
        positions.append(LabelPosition(label, y, x, int(area[seg])))
    return positions
