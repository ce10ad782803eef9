"""The pure price math now lives in services/shared/pricing.py (the relay prices lease holds
with it); re-exported here for billing's callers."""

from __future__ import annotations

from services.shared.pricing import (
    CLAUDE_CACHE_CREATION_RATIO,
    ESTIMATED_KINDS,
    KINDS,
    PriceSnapshot,
    TokenUsage,
    cache_creation_ratio,
    completion_ratio,
    locked_completion_ratio,
    reserve_amount,
    settle_amount,
)

__all__ = [
    "CLAUDE_CACHE_CREATION_RATIO",
    "ESTIMATED_KINDS",
    "KINDS",
    "PriceSnapshot",
    "TokenUsage",
    "cache_creation_ratio",
    "completion_ratio",
    "locked_completion_ratio",
    "reserve_amount",
    "settle_amount",
]
