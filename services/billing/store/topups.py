"""Top-up orders: created pending, locked by trade number when the payment notify arrives,
then marked successful (once)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from services.shared.db import Connection, Row


@dataclass(frozen=True, slots=True)
class OrderRecord(Row):
    """A top-up order as the payment notify finds it (`LOCK_ORDER`)."""

    user_id: int
    inviter_id: int
    amount: int  # what the user asked for, in the top-up unit
    quota: int  # what it credits
    money: Decimal  # what the gateway must report paid
    status: str  # pending, success


INSERT_ORDER = """
INSERT INTO top_ups (user_id, inviter_id, amount, quota, money, payment_method, trade_no)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""
LOCK_ORDER = """
SELECT user_id, inviter_id, amount, quota, money, status FROM top_ups WHERE trade_no = $1
FOR UPDATE
"""
FINISH_ORDER = """
UPDATE top_ups SET status = 'success', completed_at = now(), upstream_trade_no = $2
WHERE trade_no = $1
"""


async def insert(
    conn: Connection,
    *,
    user_id: int,
    inviter_id: int,
    amount: int,
    quota: int,
    money: Decimal,
    method: str,
    trade_no: str,
) -> None:
    await conn.execute(INSERT_ORDER, user_id, inviter_id, amount, quota, money, method, trade_no)


async def lock(conn: Connection, *, trade_no: str) -> OrderRecord | None:
    return OrderRecord.maybe(await conn.fetchrow(LOCK_ORDER, trade_no))


async def finish(conn: Connection, *, trade_no: str, upstream_trade_no: str) -> None:
    await conn.execute(FINISH_ORDER, trade_no, upstream_trade_no)
