"""The append-only ledger: one row per balance change, and the consistency check over it."""

from __future__ import annotations

from dataclasses import dataclass

from services.shared.db import Connection

INSERT_ENTRY = """
INSERT INTO ledger (user_id, idempotency_key, kind, delta_quota, delta_subscription,
                    balance_after, subscription_after, request_id, actor_id, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING id
"""
KEY_EXISTS = "SELECT 1 FROM ledger WHERE idempotency_key = $1"
CHECK_ALL = """
SELECT w.user_id, w.quota, w.subscription_quota,
       COALESCE(l.sum_quota, 0) AS sum_quota, COALESCE(l.sum_subscription, 0) AS sum_subscription
FROM wallets w
LEFT JOIN (
    SELECT user_id, SUM(delta_quota) AS sum_quota, SUM(delta_subscription) AS sum_subscription
    FROM ledger GROUP BY user_id
) l ON l.user_id = w.user_id
"""
CHECK_SOME = """
SELECT w.user_id, w.quota, w.subscription_quota,
       COALESCE((SELECT SUM(delta_quota) FROM ledger WHERE user_id = w.user_id), 0) AS sum_quota,
       COALESCE((SELECT SUM(delta_subscription) FROM ledger WHERE user_id = w.user_id), 0)
           AS sum_subscription
FROM wallets w WHERE w.user_id = ANY($1::bigint[])
"""


@dataclass(frozen=True, slots=True)
class Mismatch:
    user_id: int
    wallet_value: int
    ledger_sum: int
    subscription: bool


async def append(
    conn: Connection,
    *,
    user_id: int,
    idempotency_key: str,
    kind: str,
    delta_quota: int,
    delta_subscription: int,
    balance_after: int,
    subscription_after: int,
    request_id: str | None = None,
    actor_id: int = 0,
    reason: str = "",
) -> int:
    """Append one entry; the caller changes the wallet in the same transaction."""
    entry_id: int = await conn.fetchval(
        INSERT_ENTRY,
        user_id,
        idempotency_key,
        kind,
        delta_quota,
        delta_subscription,
        balance_after,
        subscription_after,
        request_id,
        actor_id,
        reason,
    )
    return entry_id


async def key_exists(conn: Connection, *, idempotency_key: str) -> bool:
    return await conn.fetchval(KEY_EXISTS, idempotency_key) is not None


async def check(conn: Connection, *, user_ids: list[int]) -> tuple[int, list[Mismatch]]:
    """(wallets checked, mismatches): each balance must equal the sum of its ledger deltas."""
    rows = await (conn.fetch(CHECK_SOME, user_ids) if user_ids else conn.fetch(CHECK_ALL))
    mismatches: list[Mismatch] = []
    for row in rows:
        if row["quota"] != row["sum_quota"]:
            mismatches.append(Mismatch(row["user_id"], row["quota"], int(row["sum_quota"]), False))
        if row["subscription_quota"] != row["sum_subscription"]:
            mismatches.append(
                Mismatch(
                    row["user_id"], row["subscription_quota"], int(row["sum_subscription"]), True
                )
            )
    return len(rows), mismatches
