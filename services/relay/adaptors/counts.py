"""Counts read out of an upstream's usage object as bounded non-negative ints.

An upstream is outside our control: counts may be negative, beyond int64, fractional, strings,
booleans or null. None of that may fail a settlement, so every reported count passes here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

USAGE_CEILING = 1 << 30  # far above any context window, far below int64


def count_of(value: Any) -> tuple[int, bool]:
    """A reported count as an int in [0, USAGE_CEILING], and whether it had to be changed."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0, True
    if isinstance(value, float):
        if math.isnan(value):
            return 0, True
        whole = value if math.isinf(value) else round(value)
        bounded = within(whole)
        return int(bounded), bounded != value
    bounded_int = within(value)
    return bounded_int, bounded_int != value


def within(value: float) -> int:
    """`value` brought into [0, USAGE_CEILING] (not NaN)."""
    if value <= 0:
        return 0
    return USAGE_CEILING if value >= USAGE_CEILING else int(value)


class CountReader:
    """Reads counts out of usage objects, remembering whether any had to be changed."""

    __slots__ = ("clamped",)

    def __init__(self) -> None:
        self.clamped = False

    def count(self, source: Mapping[str, Any], *names: str) -> int:
        """The first non-zero count among `names`; an absent name counts 0 and is not odd."""
        for name in names:
            if name not in source:
                continue
            value, changed = count_of(source[name])
            self.clamped |= changed
            if value:
                return value
        return 0
