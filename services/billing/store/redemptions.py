"""Redemption and gift code rows, and who used them (one row per code and user)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.shared.db import Connection
from services.shared.errors import AlreadyExists
from services.shared.numbers import ascii_int

STATUS_ENABLED = 1
STATUS_DISABLED = 2
STATUS_USED = 3

_COLUMNS = """id, user_id, key, status, name, quota, created_time, redeemed_time, used_user_id,
    valid_from, valid_until, is_gift, max_uses, used_count"""
INSERT = """
INSERT INTO redemptions (user_id, key, name, quota, valid_from, valid_until, is_gift, max_uses)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""
LOCK_BY_KEY = f"SELECT {_COLUMNS} FROM redemptions WHERE key = $1 FOR UPDATE"
SELECT_BY_ID = f"SELECT {_COLUMNS} FROM redemptions WHERE id = $1"
RECORD_USE = """
INSERT INTO redemption_logs (redemption_id, user_id) VALUES ($1, $2)
ON CONFLICT (redemption_id, user_id) DO NOTHING RETURNING id
"""
MARK_USED = """
UPDATE redemptions SET used_count = used_count + 1, redeemed_time = now(), used_user_id = $2,
    status = CASE WHEN max_uses >= 0 AND used_count + 1 >= max_uses THEN 3 ELSE status END
WHERE id = $1
"""
UPDATE = f"""
UPDATE redemptions SET name = $2, quota = $3, valid_from = $4, valid_until = $5, max_uses = $6,
    status = $7
WHERE id = $1 RETURNING {_COLUMNS}
"""
UPDATE_STATUS = f"UPDATE redemptions SET status = $2 WHERE id = $1 RETURNING {_COLUMNS}"
DELETE = "DELETE FROM redemptions WHERE id = $1"
DELETE_BY_NAME = "DELETE FROM redemptions WHERE name = $1"
DELETE_DISABLED = "DELETE FROM redemptions WHERE status = 2"
DISABLE_MANY = "UPDATE redemptions SET status = 2 WHERE id = ANY($1::bigint[]) AND status = 1"
DELETE_INVALID = """
DELETE FROM redemptions
WHERE status IN (2, 3) OR (valid_until > 0 AND valid_until < extract(epoch FROM now()))
"""


@dataclass(frozen=True, slots=True)
class Code:
    id: int
    user_id: int
    key: str
    status: int
    name: str
    quota: int
    created_time: datetime
    redeemed_time: datetime | None
    used_user_id: int
    valid_from: int
    valid_until: int
    is_gift: bool
    max_uses: int
    used_count: int


def _code(row: asyncpg.Record) -> Code:
    return Code(**{name: row[name] for name in Code.__slots__})


async def insert(conn: Connection, *, rows: list[tuple[Any, ...]]) -> None:
    """New codes (user_id, key, name, quota, valid_from, valid_until, is_gift, max_uses)."""
    try:
        await conn.executemany(INSERT, rows)
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists("a redemption code with this key already exists") from exc


async def lock_by_key(conn: Connection, *, key: str) -> Code | None:
    row = await conn.fetchrow(LOCK_BY_KEY, key)
    return None if row is None else _code(row)


async def get(conn: Connection, *, code_id: int) -> Code | None:
    row = await conn.fetchrow(SELECT_BY_ID, code_id)
    return None if row is None else _code(row)


async def record_use(conn: Connection, *, code_id: int, user_id: int) -> bool:
    """False when this user already used this code."""
    return await conn.fetchval(RECORD_USE, code_id, user_id) is not None


async def mark_used(conn: Connection, *, code_id: int, user_id: int) -> None:
    await conn.execute(MARK_USED, code_id, user_id)


async def list_page(
    conn: Connection, *, page: int, page_size: int, keyword: str, name: str = ""
) -> tuple[list[Code], int]:
    size = min(max(page_size, 1), 100)
    where, args = "", list[object]()
    if name:
        args = [name]
        where = " WHERE name = $1"
    elif keyword.strip():
        text = keyword.strip()
        as_id = ascii_int(text)
        as_id = -1 if as_id is None else as_id
        args = [as_id, f"{text}%"]
        where = " WHERE id = $1 OR name LIKE $2"
    total = await conn.fetchval(f"SELECT count(*) FROM redemptions{where}", *args)
    n = len(args)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM redemptions{where} ORDER BY id DESC"
        f" LIMIT ${n + 1} OFFSET ${n + 2}",
        *args,
        size,
        (max(page, 1) - 1) * size,
    )
    return [_code(row) for row in rows], int(total)


async def update(
    conn: Connection,
    *,
    code_id: int,
    name: str,
    quota: int,
    valid_from: int,
    valid_until: int,
    max_uses: int,
    status: int,
) -> Code:
    row = await conn.fetchrow(
        UPDATE, code_id, name, quota, valid_from, valid_until, max_uses, status
    )
    assert row is not None
    return _code(row)


async def update_status(conn: Connection, *, code_id: int, status: int) -> Code:
    row = await conn.fetchrow(UPDATE_STATUS, code_id, status)
    assert row is not None
    return _code(row)


async def delete(conn: Connection, *, code_id: int) -> int:
    status = await conn.execute(DELETE, code_id)
    return int(status.split()[-1])


async def delete_invalid(conn: Connection) -> int:
    status = await conn.execute(DELETE_INVALID)
    return int(status.split()[-1])


async def delete_by_name(conn: Connection, *, name: str) -> int:
    status = await conn.execute(DELETE_BY_NAME, name)
    return int(status.split()[-1])


async def delete_disabled(conn: Connection) -> int:
    status = await conn.execute(DELETE_DISABLED)
    return int(status.split()[-1])


async def disable_many(conn: Connection, *, ids: list[int]) -> int:
    status = await conn.execute(DISABLE_MANY, ids)
    return int(status.split()[-1])
