"""argparse value types shared by every command-line tool: each refuses a bad value in one line."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

__all__ = ["at_least", "in_range", "preset_override", "unit_interval"]


def in_range(low: float, high: float, what: str = "a number") -> Callable[[str], float]:
    """argparse type: a finite number in [``low``, ``high``] (NaN is refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:  # false for nan too
            raise argparse.ArgumentTypeError(f"must be {what} in [{low:g}, {high:g}], got {text}")
        return value

    return parse


unit_interval = in_range(0.0, 1.0)


def at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def preset_override(spec: str) -> tuple[str, object]:
    """argparse type: ``KEY=VALUE``, a preset field (``vision.num_group_tokens=[32]``), VALUE read
    as JSON where it parses (a list, a number, true) and kept as text otherwise."""
    key, sep, value = spec.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected KEY=VALUE, e.g. vision.num_group_tokens=[32]")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
