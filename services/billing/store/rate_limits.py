"""Model request rate limits per user and per key (upstream `middleware/model-rate-limit.go`):
sliding windows kept in PostgreSQL so every billing replica shares them. Checked and recorded by
the `reserve_hold` SQL function (migration 0006) under a transaction advisory lock per subject."""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.shared.db import Connection
from services.shared.errors import DomainError, QuotaExhausted

RETRY_AFTER_KEY = "veloera-retry-after"

PRUNE = "DELETE FROM rate_events WHERE at < now() - interval '1 day'"


class RateLimited(QuotaExhausted):
    """Too many requests in the window; `retry_after` is how long to wait (seconds)."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        DomainError.__init__(self, message, code="rate_limited")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Limit:
    scope: str  # "user" | "token"
    subject: int
    period_seconds: int
    max_requests: int  # 0 = unlimited (counts failures too)
    max_success: int  # 0 = unlimited


def limited(limit: Limit, *, now: float, oldest: float, what: str) -> RateLimited:
    wait = max(math.ceil(oldest + limit.period_seconds - now), 1)
    who = "user" if limit.scope == "user" else "key"
    cap = limit.max_requests if what == "requests" else limit.max_success
    return RateLimited(
        f"rate limit reached for this {who}: at most {cap} {what} per "
        f"{limit.period_seconds} s; retry after {wait} s",
        retry_after=wait,
    )


async def prune(conn: Connection) -> None:
    await conn.execute(PRUNE)
