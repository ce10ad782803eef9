"""Garbage-collector settings for long-running services, applied once start-up is done."""

from __future__ import annotations

import gc

# Allocations between two young collections (CPython's default is 700). A request allocates a
# few hundred objects, so the default runs a collection every request or two and a full one
# every few hundred: on the relay that was 20-40 % of its CPU per request (bench/PROFILE.md).
# Reference cycles are rare on these paths; they are still collected, just in larger sweeps.
GEN0_THRESHOLD = 50_000
GEN1_THRESHOLD = 20
GEN2_THRESHOLD = 100


def settle_after_startup() -> None:
    """Collect what start-up left, move every surviving object (modules, tables, pools) out of
    the collector's view for good, and make young collections rare."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
