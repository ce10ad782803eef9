"""SQL for the option change audit (the options themselves are in channels_repo)."""

from __future__ import annotations

import asyncpg

from services.accounts.types import Conn

AUDIT_COLUMNS = "id, actor_id, key, old_value, new_value, created_at"
INSERT_AUDIT = """
INSERT INTO option_audit (actor_id, key, old_value, new_value, created_at)
VALUES ($1, $2, $3, $4, $5)
"""
_AUDIT_FILTER = "FROM option_audit WHERE ($1 = '' OR key = $1)"
LIST_AUDIT = f"SELECT {AUDIT_COLUMNS} {_AUDIT_FILTER} ORDER BY id DESC LIMIT $2 OFFSET $3"
COUNT_AUDIT = f"SELECT count(*) {_AUDIT_FILTER}"


async def insert_audit(
    conn: Conn, *, actor_id: int, key: str, old_value: str, new_value: str, now: int
) -> None:
    await conn.execute(INSERT_AUDIT, actor_id, key, old_value, new_value, now)


async def list_audit(
    conn: Conn, *, key: str, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    rows = await conn.fetch(LIST_AUDIT, key, limit, offset)
    total: int = await conn.fetchval(COUNT_AUDIT, key)
    return rows, total
