"""Sliding-window inference for dense score maps (the GroupViT / mmseg test protocol).

Windows never pad the image: a window that would run past the border is shifted back
inside, and when the image is smaller than the window along an axis the window shrinks
to the image. Overlapping window outputs are summed and divided by the per-pixel count.
"""

from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from groupvit.errors import InputError

__all__ = [
    "pair",
    "check_windows",
    "window_starts",
    "window_grid",
    "window_count",
    "average_windows",
    "slide_inference",
    "resize_scores",
]

Size2 = int | tuple[int, int]
Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open


def pair(value: Size2, name: str = "value") -> tuple[int, int]:
    """``int`` -> ``(v, v)``; a pair is returned as a tuple. Both entries must be positive ints."""
    out = (
        (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else ()
    )
    if len(out) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in out):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(out) <= 0:
        raise InputError(f"{name} must be positive, got {value!r}")
    return out  # type: ignore[return-value]


def check_windows(window: Size2, stride: Size2) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(window, stride)`` as pairs of positive ints, the stride at most the window on each axis
    (a longer step would skip pixels); an :class:`InputError` otherwise. The one check of both."""
    win, step = pair(window, "window"), pair(stride, "stride")
    if step[0] > win[0] or step[1] > win[1]:
        raise InputError(f"stride {step} must not exceed window {win}: pixels would be skipped")
    return win, step


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of the windows along one axis.

    ``ceil((length - window) / stride) + 1`` windows at ``0, stride, 2*stride, ...``; the
    last one is moved back so that it ends exactly at ``length``. One window at 0 when
    ``length <= window``. ``0 < stride <= window`` (:func:`check_windows`).
    """
    last = max(length - window, 0)
    num = -(-last // stride) + 1  # ceil division
    return [min(i * stride, last) for i in range(num)]


def window_grid(size: tuple[int, int], window: Size2, stride: Size2) -> list[Box]:
    """All windows ``(y0, y1, x0, x1)`` (half-open) covering an image of ``size = (H, W)``."""
    (win_h, win_w), (stride_h, stride_w) = check_windows(window, stride)
    height, width = size
    return [
        (y0, min(y0 + win_h, height), x0, min(x0 + win_w, width))
        for y0 in window_starts(height, win_h, stride_h)
        for x0 in window_starts(width, win_w, stride_w)
    ]


def window_count(size: tuple[int, int], window: Size2, stride: Size2) -> Tensor:
    """How many windows cover each pixel: LongTensor [H, W], every entry >= 1."""
    count = torch.zeros(size, dtype=torch.long)
    for y0, y1, x0, x1 in window_grid(size, window, stride):
        count[y0:y1, x0:x1] += 1
    return count


def average_windows(windows: Iterable[tuple[Box, Tensor]], size: tuple[int, int]) -> Tensor:
    """Sum window score maps into place and divide by the per-pixel window count.

    Args:
        windows: ``(y0, y1, x0, x1)`` boxes (half-open, from :func:`window_grid`) with their score
            maps [B, C, y1 - y0, x1 - x0]; consumed one at a time, so a generator keeps one map alive.
        size: (H, W) of the image the boxes cover.

    Returns:
        Tensor [B, C, H, W] in channels-last memory order (like the window maps, so that the final
        per-pixel argmax reads contiguous rows). A window adds exact zeros where its map is 0.
    """
    height, width = size
    total: Tensor | None = None
    count: Tensor | None = None
    for (y0, y1, x0, x1), out in windows:
        if total is None:
            total = out.new_zeros(out.shape[0], height, width, out.shape[1]).permute(0, 3, 1, 2)
            count = torch.zeros(1, 1, height, width, device=out.device)
        total[:, :, y0:y1, x0:x1] += out
        count[:, :, y0:y1, x0:x1] += 1
        del out  # not alive while the next window is scored
    if total is None or count is None:
        raise ValueError("no windows to average")
    return total.div_(count.to(total.dtype))  # in place: a second [B, C, H, W] copy can be gigabytes


def slide_inference(
    fn: Callable[[Tensor], Tensor],
    images: Tensor,
    window: Size2,
    stride: Size2,
    num_channels: int,
) -> Tensor:
    """Run ``fn`` on overlapping windows and average the score maps where they overlap.

    Args:
        fn: maps a crop [B, 3, h, w] to score maps [B, num_channels, h, w].
        images: [B, 3, H, W].
        window: window size, int or (h, w).
        stride: step between windows, int or (h, w); must not exceed the window.
        num_channels: number of score channels C that ``fn`` returns.

    Returns:
        Tensor [B, C, H, W]: sum of the per-window maps divided by the per-pixel window count.
    """
    batch, _, height, width = images.shape

    def windows() -> Iterator[tuple[Box, Tensor]]:
        for y0, y1, x0, x1 in window_grid((height, width), window, stride):
            out = fn(images[:, :, y0:y1, x0:x1])
            expected = (batch, num_channels, y1 - y0, x1 - x0)
            if tuple(out.shape) != expected:
                raise ValueError(f"window function returned shape {tuple(out.shape)}, expected {expected}")
            yield (y0, y1, x0, x1), out
            del out  # not alive while the next window is scored

    return average_windows(windows(), (height, width))


def resize_scores(scores: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly resize score maps [B, C, H, W] to [B, C, *size] (align_corners=False).

    Used after sliding to go back to the original image size (protocol step 6); the
    argmax of the result gives the final labels.
    """
    if tuple(scores.shape[-2:]) == tuple(size):
        return scores
    return F.interpolate(scores, size=tuple(size), mode="bilinear", align_corners=False)
