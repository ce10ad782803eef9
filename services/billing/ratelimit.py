"""Model request rate limits per user and per key (reference §7.8): sliding windows kept in
PostgreSQL so every billing replica shares them. Checked inside the Reserve transaction."""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.shared.db import Connection
from services.shared.errors import DomainError, QuotaExhausted

RETRY_AFTER_KEY = "veloera-retry-after"

# Serialises the check-and-record of one subject across replicas until the commit.
LOCK_SUBJECT = "SELECT pg_advisory_xact_lock(hashtextextended($1::text || ':' || $2::bigint, 7))"
RECORD = """
INSERT INTO rate_events (scope, subject, request_id) VALUES ($1, $2, $3)
ON CONFLICT (scope, subject, request_id) DO NOTHING RETURNING at
"""
WINDOW = """
SELECT count(*) AS total, count(*) FILTER (WHERE success) AS succeeded,
       extract(epoch FROM clock_timestamp()) AS now,
       extract(epoch FROM min(at)) AS oldest,
       extract(epoch FROM min(at) FILTER (WHERE success)) AS oldest_success
FROM rate_events
WHERE scope = $1 AND subject = $2 AND at > clock_timestamp() - make_interval(secs => $3)
      AND request_id <> $4
"""
MARK_SUCCESS = "UPDATE rate_events SET success = true WHERE request_id = $1"
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


async def check_and_record(conn: Connection, *, limit: Limit, request_id: str) -> None:
    """Record this request in the window, or raise RateLimited (the caller rolls back). A
    repeated request id is neither counted again nor refused."""
    if limit.period_seconds <= 0 or (limit.max_requests <= 0 and limit.max_success <= 0):
        return
    await conn.execute(LOCK_SUBJECT, limit.scope, limit.subject)
    if await conn.fetchval(RECORD, limit.scope, limit.subject, request_id) is None:
        return
    row = await conn.fetchrow(
        WINDOW, limit.scope, limit.subject, float(limit.period_seconds), request_id
    )
    assert row is not None
    now = float(row["now"])
    if limit.max_requests > 0 and row["total"] >= limit.max_requests:
        raise limited(limit, now=now, oldest=float(row["oldest"]), what="requests")
    if limit.max_success > 0 and row["succeeded"] >= limit.max_success:
        raise limited(limit, now=now, oldest=float(row["oldest_success"]), what="successes")


def limited(limit: Limit, *, now: float, oldest: float, what: str) -> RateLimited:
    wait = max(math.ceil(oldest + limit.period_seconds - now), 1)
    who = "user" if limit.scope == "user" else "key"
    cap = limit.max_requests if what == "requests" else limit.max_success
    return RateLimited(
        f"rate limit reached for this {who}: at most {cap} {what} per "
        f"{limit.period_seconds} s; retry after {wait} s",
        retry_after=wait,
    )


async def mark_success(conn: Connection, *, request_id: str) -> None:
    await conn.execute(MARK_SUCCESS, request_id)


async def prune(conn: Connection) -> None:
    await conn.execute(PRUNE)
