"""Lease rows: insert, lock, trim, spend, return; and the holds a leased settlement becomes.
The amounts come from metering/leases.py; these only read and write them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.shared.db import Connection, Row

INSERT_LEASE = """
INSERT INTO leases (lease_id, holder, user_id, token_id, model, "group", price, granted_quota,
                    granted_subscription, granted_token, expires_at, reap_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, now() + make_interval(secs => $11),
        now() + make_interval(secs => $11 + $12))
RETURNING expires_at
"""
_COLUMNS = """lease_id, user_id, token_id, model, "group", price::text AS price, granted_quota,
    granted_subscription, granted_token, spent_quota, spent_subscription, spent_token, status,
    returned"""


@dataclass(frozen=True, slots=True)
class LeaseRecord(Row):
    """A `leases` row (`_COLUMNS`): what was granted from the wallet (quota, subscription) and
    the token's budget, and what of it the lease's requests spent."""

    lease_id: str
    user_id: int
    token_id: int
    model: str
    group: str
    price: str  # the price snapshot, JSON
    granted_quota: int
    granted_subscription: int
    granted_token: int
    spent_quota: int
    spent_subscription: int
    spent_token: int
    status: str  # active, returned
    returned: int

    @property
    def unspent_quota(self) -> int:
        return self.granted_quota - self.spent_quota

    @property
    def unspent_subscription(self) -> int:
        return self.granted_subscription - self.spent_subscription

    @property
    def unspent_token(self) -> int:
        return self.granted_token - self.spent_token


LOCK_LEASE = f"SELECT {_COLUMNS} FROM leases WHERE lease_id = $1 FOR UPDATE"
# The batch's leases and every active lease of the users it settles, leased or held per request
# ($2: the batch's request ids; usage above a hold may take from any of them), in one lock order.
LOCK_LEASES = f"""
SELECT {_COLUMNS} FROM leases
WHERE lease_id = ANY($1::text[])
   OR (status = 'active'
       AND user_id IN (SELECT user_id FROM leases WHERE lease_id = ANY($1::text[])
                       UNION SELECT user_id FROM holds WHERE request_id = ANY($2::text[])))
ORDER BY lease_id FOR UPDATE
"""
LOCK_DUE = """
SELECT lease_id FROM leases WHERE status = 'active' AND reap_at < now()
ORDER BY reap_at LIMIT 1 FOR UPDATE SKIP LOCKED
"""
ACTIVE_FOR_USER = """
SELECT lease_id FROM leases WHERE user_id = $1 AND status = 'active' ORDER BY lease_id
"""
TRIM_LEASE = """
UPDATE leases SET granted_quota = granted_quota - $2,
    granted_subscription = granted_subscription - $3, granted_token = granted_token - $4
WHERE lease_id = $1
"""
FINISH_LEASE = """
UPDATE leases SET status = 'returned', returned_at = now(), returned = $2 WHERE lease_id = $1
"""
EXISTING_HOLDS = "SELECT request_id FROM holds WHERE request_id = ANY($1::text[])"
INSERT_HOLDS = """
INSERT INTO holds (request_id, user_id, token_id, model, "group", price, reserved_quota,
                   reserved_subscription, reserved_token, expires_at, lease_id)
SELECT v.request_id, v.user_id, v.token_id, v.model, v.grp, v.price::jsonb, v.quota,
       v.subscription, v.token, now() + interval '1 hour', v.lease_id
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[],
            $7::bigint[], $8::bigint[], $9::bigint[], $10::text[])
    AS v(request_id, user_id, token_id, model, grp, price, quota, subscription, token, lease_id)
ON CONFLICT (request_id) DO NOTHING
RETURNING request_id
"""
SPEND = """
UPDATE leases l SET spent_quota = l.spent_quota + v.quota,
    spent_subscription = l.spent_subscription + v.subscription,
    spent_token = l.spent_token + v.token
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
    AS v(lease_id, quota, subscription, token)
WHERE l.lease_id = v.lease_id
"""


async def insert(
    conn: Connection,
    *,
    lease_id: str,
    holder: str,
    user_id: int,
    token_id: int,
    model: str,
    group: str,
    price_json: str,
    quota: int,
    subscription: int,
    token: int,
    ttl_seconds: float,
    hold_seconds: float,
) -> datetime:
    """The new lease's expiry (it is reaped `hold_seconds` after it)."""
    expires_at: datetime = await conn.fetchval(
        INSERT_LEASE, lease_id, holder, user_id, token_id, model, group, price_json,
        quota, subscription, token, ttl_seconds, hold_seconds,
    )  # fmt: skip
    return expires_at


async def lock(conn: Connection, *, lease_id: str) -> LeaseRecord | None:
    return LeaseRecord.maybe(await conn.fetchrow(LOCK_LEASE, lease_id))


async def lock_for_batch(
    conn: Connection, *, lease_ids: list[str], request_ids: list[str]
) -> list[LeaseRecord]:
    """The batch's leases and every active lease of the users it settles, locked in order."""
    return [LeaseRecord.of(row) for row in await conn.fetch(LOCK_LEASES, lease_ids, request_ids)]


async def lock_one_due(conn: Connection) -> str | None:
    """One active lease past its reap time no other replica is working on, locked."""
    lease_id: str | None = await conn.fetchval(LOCK_DUE)
    return lease_id


async def active_for_user(conn: Connection, *, user_id: int) -> list[str]:
    return [r["lease_id"] for r in await conn.fetch(ACTIVE_FOR_USER, user_id)]


async def trim(
    conn: Connection, *, lease_id: str, quota: int, subscription: int, token: int
) -> None:
    await conn.execute(TRIM_LEASE, lease_id, quota, subscription, token)


async def finish(conn: Connection, *, lease_id: str, returned: int) -> None:
    await conn.execute(FINISH_LEASE, lease_id, returned)


async def existing_holds(conn: Connection, *, request_ids: list[str]) -> set[str]:
    """The request ids among these that already have a hold row."""
    return {r["request_id"] for r in await conn.fetch(EXISTING_HOLDS, request_ids)}


async def insert_holds(conn: Connection, *, rows: list[tuple[Any, ...]]) -> int:
    """Open holds taken from leases (request_id, user_id, token_id, model, group, price,
    quota, subscription, token, lease_id); returns how many were new."""
    inserted = await conn.fetch(INSERT_HOLDS, *[list(c) for c in zip(*rows, strict=True)])
    return len(inserted)


async def spend(
    conn: Connection,
    *,
    lease_ids: list[str],
    quotas: list[int],
    subscriptions: list[int],
    tokens: list[int],
) -> None:
    await conn.execute(SPEND, lease_ids, quotas, subscriptions, tokens)
