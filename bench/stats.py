"""Percentiles and medians for the reports."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float], scale: float = 1.0) -> dict[str, float] | None:
    """p50/p90/p99/max/mean of `values` times `scale`, rounded; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return {
        "n": float(len(ordered)),
        "p50": round(percentile(ordered, 50) * scale, 3),
        "p90": round(percentile(ordered, 90) * scale, 3),
        "p99": round(percentile(ordered, 99) * scale, 3),
        "max": round(ordered[-1] * scale, 3),
        "mean": round(statistics.fmean(ordered) * scale, 3),
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0
