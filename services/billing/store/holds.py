"""Hold rows: the reservation placed before an upstream call, settled or released after it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson

from services.shared.db import Connection
from services.shared.pricing import PriceSnapshot

COLUMNS = """request_id, user_id, token_id, model, "group", price::text AS price, reserved_quota,
    reserved_subscription, reserved_token, status, created_at, expires_at, charged,
    coalesce(lease_id, '') AS lease_id"""
LOCK_HOLD = f"SELECT {COLUMNS} FROM holds WHERE request_id = $1 FOR UPDATE"
LOCK_EXPIRED = f"""
SELECT {COLUMNS} FROM holds WHERE status = 'open' AND expires_at < now()
ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED
"""
LOCK_WITH_LOG = f"""
SELECT {COLUMNS}, log_id FROM holds WHERE request_id = ANY($1::text[])
ORDER BY request_id FOR UPDATE
"""
SET_LOG = "UPDATE holds SET log_id = $2 WHERE request_id = $1"
FINISH_HOLD = """
UPDATE holds SET status = $2, charged = $3, settled_at = now() WHERE request_id = $1
"""


@dataclass(frozen=True, slots=True)
class Hold:
    request_id: str
    user_id: int
    token_id: int
    model: str
    group: str
    price: PriceSnapshot
    reserved_quota: int
    reserved_subscription: int
    reserved_token: int
    status: str
    created_at: datetime
    expires_at: datetime
    charged: int
    lease_id: str = ""  # set when the relay held it against a lease

    @property
    def reserved(self) -> int:
        return self.reserved_quota + self.reserved_subscription


def hold_of(row: asyncpg.Record) -> Hold:
    return Hold(
        request_id=row["request_id"],
        user_id=row["user_id"],
        token_id=row["token_id"],
        model=row["model"],
        group=row["group"],
        price=PriceSnapshot.from_json(orjson.loads(row["price"])),
        reserved_quota=row["reserved_quota"],
        reserved_subscription=row["reserved_subscription"],
        reserved_token=row["reserved_token"],
        status=row["status"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        charged=row["charged"],
        lease_id=row["lease_id"],
    )


async def lock(conn: Connection, *, request_id: str) -> Hold | None:
    row = await conn.fetchrow(LOCK_HOLD, request_id)
    return None if row is None else hold_of(row)


async def lock_one_expired(conn: Connection) -> Hold | None:
    """One expired open hold no other replica is working on, locked."""
    row = await conn.fetchrow(LOCK_EXPIRED)
    return None if row is None else hold_of(row)


async def finish(conn: Connection, *, request_id: str, status: str, charged: int) -> None:
    await conn.execute(FINISH_HOLD, request_id, status, charged)


async def lock_with_log(conn: Connection, *, request_ids: list[str]) -> dict[str, tuple[Hold, int]]:
    """These holds with their log row id (0 when none), locked in request id order."""
    rows = await conn.fetch(LOCK_WITH_LOG, request_ids)
    return {r["request_id"]: (hold_of(r), r["log_id"] or 0) for r in rows}


async def set_log(conn: Connection, *, request_id: str, log_id: int) -> None:
    await conn.execute(SET_LOG, request_id, log_id)
