"""Sliding-window request counters in PostgreSQL, shared by every web replica.

Each (scope, subject) keeps one row per fixed window; a hit is admitted when the previous
window's count, weighted by how much of it still overlaps the sliding window ending now, plus
the current window's count stays within the limit. One atomic upsert per hit, so replicas
never lose each other's counts; refused hits count too (a client hammering stays refused).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from services.accounts.types import Conn
from services.shared.errors import InvalidArgument

MAX_WINDOW_SECONDS = 24 * 3600
MAX_SUBJECT_LENGTH = 256
MAX_SCOPE_LENGTH = 32
PRUNE_CHANCE = 0.01  # about one hit in a hundred sweeps rows no window can still need

HIT = """
WITH hit AS (
    INSERT INTO rate_limit_windows (scope, subject, window_start, hits) VALUES ($1, $2, $3, 1)
    ON CONFLICT (scope, subject, window_start)
    DO UPDATE SET hits = rate_limit_windows.hits + 1
    RETURNING hits
)
SELECT (SELECT hits FROM hit) AS current,
       coalesce((SELECT hits FROM rate_limit_windows
                 WHERE scope = $1 AND subject = $2 AND window_start = $4), 0) AS previous
"""
PRUNE = "DELETE FROM rate_limit_windows WHERE window_start < $1"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: int  # seconds; 0 when allowed


def check_request(scope: str, subject: str, limit: int, window: int) -> None:
    if not scope or len(scope) > MAX_SCOPE_LENGTH:
        raise InvalidArgument("a rate limit scope is required (at most 32 characters)")
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise InvalidArgument("the rate limit subject is too long")
    if limit < 1 or not 1 <= window <= MAX_WINDOW_SECONDS:
        raise InvalidArgument("a rate limit needs limit >= 1 and 1..86400 window seconds")


def verdict(previous: int, current: int, elapsed: float, window: int, limit: int) -> Verdict:
    """`current` includes this hit; `elapsed` is how far (s) into the current window we are."""
    overlap = (window - elapsed) / window
    if previous * overlap + current <= limit:
        return Verdict(True, 0)
    return Verdict(False, max(math.ceil(_wait(previous, current, elapsed, window, limit)), 1))


def _wait(previous: int, current: int, elapsed: float, window: int, limit: int) -> float:
    """Seconds until one more hit would be admitted, if no other hit came meanwhile."""
    room = limit - current - 1
    if room >= 0 and previous > 0:
        # Within this window, once enough of the previous one has slid out.
        needed = window * (1 - room / previous)
        if needed < window:
            return needed - elapsed
    # In the next window this one is the previous: wait until enough of it has slid out.
    needed_next = window * (1 - (limit - 1) / current) if current > limit - 1 else 0.0
    return window - elapsed + needed_next


async def hit(
    conn: Conn, *, scope: str, subject: str, limit: int, window: int, now: float
) -> Verdict:
    start = int(now) - int(now) % window
    row = await conn.fetchrow(HIT, scope, subject, start, start - window)
    assert row is not None
    if random.random() < PRUNE_CHANCE:
        await conn.execute(PRUNE, int(now) - 2 * MAX_WINDOW_SECONDS)
    return verdict(row["previous"], row["current"], now - start, window, limit)
