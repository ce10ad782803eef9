"""The notification limit (NOTIFY_LIMIT_COUNT per NOTIFICATION_LIMIT_DURATION_MINUTE per user
and type) counted in PostgreSQL: it holds across replicas claiming at the same moment, and a
redelivered event is neither counted twice nor sent again."""

from __future__ import annotations

import asyncio
import secrets
from typing import Protocol

import asyncpg
import pytest

from services.accounts.notify import limits

pytestmark = pytest.mark.integration


class Infra(Protocol):
    database_url: str


async def _connections(infra: Infra, count: int) -> list[asyncpg.Connection]:
    return [
        await asyncpg.connect(infra.database_url, server_settings={"search_path": "accounts"})
        for _ in range(count)
    ]


async def test_concurrent_claims_from_many_replicas_admit_only_the_limit(infra: Infra) -> None:
    user_id = 10**12 + secrets.randbelow(10**9)
    base = secrets.randbelow(10**12)
    conns = await _connections(infra, 6)
    try:
        outcomes = await asyncio.gather(
            *(
                limits.claim(
                    conn,
                    event_seq=base + i,
                    user_id=user_id,
                    kind="quota_exceed",
                    limit=2,
                    minutes=10,
                )
                for i, conn in enumerate(conns)
            )
        )
        assert sorted(outcomes) == ["limited"] * 4 + ["pending"] * 2
        # Another type has its own bucket.
        other = await limits.claim(
            conns[0], event_seq=base + 100, user_id=user_id, kind="task_failed", limit=2, minutes=10
        )
        assert other == "pending"
        admitted = base + outcomes.index("pending")
        # A redelivery finds its own outcome again and takes no new slot.
        await limits.finish(conns[0], event_seq=admitted, user_id=user_id, outcome="delivered")
        again = await limits.claim(
            conns[1], event_seq=admitted, user_id=user_id, kind="quota_exceed", limit=2, minutes=10
        )
        assert again == "delivered"
    finally:
        for conn in conns:
            await conn.close()


async def test_outcomes_older_than_a_day_are_purged(infra: Infra) -> None:
    user_id = 10**12 + secrets.randbelow(10**9)
    seq = secrets.randbelow(10**12)
    [conn] = await _connections(infra, 1)
    try:
        await limits.claim(conn, event_seq=seq, user_id=user_id, kind="x", limit=1, minutes=10)
        await conn.execute(
            "UPDATE notifications SET created_at = now() - interval '2 days' WHERE user_id = $1",
            user_id,
        )
        assert await limits.purge(conn) >= 1
        assert not await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE user_id = $1", user_id
        )
    finally:
        await conn.close()
