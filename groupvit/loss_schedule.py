"""A loss weight that changes with the training iteration: piecewise linear between breakpoints.

Config as data: a weight is either a number (constant) or a list of ``[iteration, weight]`` pairs,
for instance ``[[0, 0.3], [900, 1.0]]`` (0.3 at the start, rising linearly to 1.0 at iteration 900).
Before the first breakpoint the first weight holds, after the last the last. The weight depends on
the iteration alone, so a run resumed from a checkpoint (whose iteration ``--resume`` restores)
weighs each step as the unbroken run did.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from groupvit.errors import InputError

__all__ = ["WeightSchedule"]


class WeightSchedule:
    """``schedule(iteration) -> weight``: piecewise-linear interpolation of ``[iteration, weight]`` points.

    Args:
        value: a number (the weight at every iteration) or a sequence of ``[iteration, weight]``
            pairs with strictly increasing iterations >= 0 and weights >= 0.
        name: the config field, named in the error for a malformed value.
    """

    def __init__(self, value: float | Sequence[Sequence[float]], name: str = "weight") -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            points = [(0, float(value))]
        else:
            points = self._points(value, name)
        if any(w < 0 for _, w in points):
            raise InputError(f"{name} must be >= 0 everywhere, got {value!r}")
        self._iterations = [int(i) for i, _ in points]
        self._weights = [float(w) for _, w in points]

    @staticmethod
    def _points(value: object, name: str) -> list[tuple[int, float]]:
        hint = f"{name} must be a number or a list of [iteration, weight] pairs, e.g. [[0, 0.3], [900, 1.0]]"
        try:
            pairs = [tuple(pair) for pair in value]  # type: ignore[union-attr]
            if not pairs or any(len(pair) != 2 for pair in pairs):
                raise ValueError
            if any(float(i) != int(i) or int(i) < 0 for i, _ in pairs):
                raise ValueError
            points = [(int(i), float(w)) for i, w in pairs]
        except (TypeError, ValueError):
            raise InputError(f"{hint}, got {value!r}") from None
        if any(b[0] <= a[0] for a, b in zip(points, points[1:])):
            raise InputError(f"{name}: the iterations must increase strictly, got {value!r}")
        return points

    def __call__(self, iteration: int) -> float:
        """The weight at ``iteration`` (0-based, the iteration about to run)."""
        its, ws = self._iterations, self._weights
        k = bisect.bisect_right(its, iteration)
        if k == 0:
            return ws[0]
        if k == len(its):
            return ws[-1]
        t = (iteration - its[k - 1]) / (its[k] - its[k - 1])
        return ws[k - 1] + t * (ws[k] - ws[k - 1])

    @property
    def always_off(self) -> bool:
        """True when the weight is 0 at every iteration (the loss need not be computed)."""
        return max(self._weights) == 0

    def __repr__(self) -> str:
        return f"WeightSchedule({list(zip(self._iterations, self._weights))})"
