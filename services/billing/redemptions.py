"""Redemption and gift codes (reference §7.5): batch creation, admin edits and redeeming, with
the use count and the once-per-user rule enforced by locks and constraints in one transaction."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.billing import adjust
from services.shared.db import Connection
from services.shared.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

STATUS_ENABLED = 1
STATUS_DISABLED = 2
STATUS_USED = 3
MAX_BATCH = 100
MAX_KEY_LENGTH = 32

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


@dataclass(frozen=True, slots=True)
class NewCodes:
    actor_id: int
    name: str
    quota: int
    count: int
    key: str = ""
    is_gift: bool = False
    max_uses: int = 1
    valid_from: int = 0
    valid_until: int = 0


def _code(row: asyncpg.Record) -> Code:
    return Code(**{name: row[name] for name in Code.__slots__})


def validate_fields(
    *, name: str, quota: int, valid_from: int, valid_until: int, is_gift: bool, max_uses: int
) -> None:
    if not 1 <= len(name.strip()) <= 20:
        raise InvalidArgument("name must be 1 to 20 characters", code="invalid_redemption")
    if quota <= 0:
        raise InvalidArgument("quota must be greater than 0", code="invalid_redemption")
    if valid_from < 0 or valid_until < 0:
        raise InvalidArgument("the validity window must not be negative")
    if valid_from and valid_until and valid_from >= valid_until:
        raise InvalidArgument("valid_from must be before valid_until", code="invalid_redemption")
    if is_gift and (max_uses == 0 or max_uses < -1):
        raise InvalidArgument("max_uses must be -1 (unlimited) or at least 1")


async def create(conn: Connection, *, spec: NewCodes) -> list[str]:
    max_uses = spec.max_uses if spec.is_gift else 1
    validate_fields(
        name=spec.name,
        quota=spec.quota,
        valid_from=spec.valid_from,
        valid_until=spec.valid_until,
        is_gift=spec.is_gift,
        max_uses=max_uses,
    )
    custom = spec.key.strip()
    if custom and spec.count > 1:
        raise InvalidArgument("a custom key creates exactly one code (count must be 1)")
    if not 1 <= spec.count <= MAX_BATCH:
        raise InvalidArgument(f"count must be between 1 and {MAX_BATCH}")
    if len(custom) > MAX_KEY_LENGTH:
        raise InvalidArgument(f"a custom key has at most {MAX_KEY_LENGTH} characters")
    keys = [custom] if custom else [secrets.token_hex(16) for _ in range(spec.count)]
    args = [
        (
            spec.actor_id,
            key,
            spec.name.strip(),
            spec.quota,
            spec.valid_from,
            spec.valid_until,
            spec.is_gift,
            max_uses,
        )
        for key in keys
    ]
    try:
        await conn.executemany(INSERT, args)
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists("a redemption code with this key already exists") from exc
    return keys


async def redeem(conn: Connection, *, key: str, user_id: int, username: str = "") -> Code:
    """Credit the code's quota to the user once; the caller owns the transaction."""
    if not key.strip():
        raise InvalidArgument("the redemption code is required", code="invalid_redemption")
    if user_id <= 0:
        raise InvalidArgument("user_id must be positive")
    row = await conn.fetchrow(LOCK_BY_KEY, key.strip())
    if row is None:
        raise NotFound("invalid redemption code", code="invalid_redemption")
    code = _code(row)
    _check_usable(code, now=int(time.time()))
    if await conn.fetchval(RECORD_USE, code.id, user_id) is None:
        raise FailedPrecondition(
            "you have already redeemed this gift code", code="gift_already_redeemed"
        )
    await conn.execute(MARK_USED, code.id, user_id)
    kind = "礼品码" if code.is_gift else "兑换码"
    await adjust.adjust(
        conn,
        change=adjust.Adjustment(
            idempotency_key=f"redeem:{code.id}:{user_id}",
            user_id=user_id,
            delta=code.quota,
            set_to=None,
            reason=f"redemption {code.id}",
            actor_id=0,
            kind="redeem",
            subscription=False,
            log_content=f"通过{kind}充值 {code.quota}，兑换码ID {code.id}",
            username=username,
        ),
    )
    return code


def _check_usable(code: Code, *, now: int) -> None:
    if code.valid_from and now < code.valid_from:
        raise FailedPrecondition("this code is not valid yet", code="redemption_not_started")
    if code.valid_until and now > code.valid_until:
        raise FailedPrecondition("this code has expired", code="redemption_expired")
    if code.status == STATUS_DISABLED:
        raise FailedPrecondition("this code is disabled", code="redemption_disabled")
    if code.status == STATUS_USED or (0 <= code.max_uses <= code.used_count):
        raise FailedPrecondition("this code has already been used", code="redemption_used")


async def get(conn: Connection, *, code_id: int) -> Code:
    row = await conn.fetchrow(SELECT_BY_ID, code_id)
    if row is None:
        raise NotFound(f"redemption {code_id} not found")
    return _code(row)


async def list_page(
    conn: Connection, *, page: int, page_size: int, keyword: str
) -> tuple[list[Code], int]:
    size = min(max(page_size, 1), 100)
    where, args = "", []
    if keyword.strip():
        text = keyword.strip()
        args = [int(text) if text.isdigit() else -1, f"{text}%"]
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
    conn: Connection, *, code_id: int, fields: dict[str, Any], status_only: bool
) -> Code:
    current = await get(conn, code_id=code_id)
    status = int(fields.get("status") or current.status)
    if status not in (STATUS_ENABLED, STATUS_DISABLED, STATUS_USED):
        raise InvalidArgument("status must be 1 (enabled), 2 (disabled) or 3 (used)")
    if status_only:
        row = await conn.fetchrow(UPDATE_STATUS, code_id, status)
    else:
        name = str(fields["name"])
        quota = int(fields["quota"])
        max_uses = int(fields["max_uses"]) if current.is_gift else 1
        validate_fields(
            name=name,
            quota=quota,
            valid_from=int(fields["valid_from"]),
            valid_until=int(fields["valid_until"]),
            is_gift=current.is_gift,
            max_uses=max_uses,
        )
        if 0 <= max_uses < current.used_count:
            raise InvalidArgument("max_uses cannot be below the number of uses already made")
        row = await conn.fetchrow(
            UPDATE,
            code_id,
            name.strip(),
            quota,
            int(fields["valid_from"]),
            int(fields["valid_until"]),
            max_uses,
            status,
        )
    assert row is not None
    return _code(row)


async def delete(conn: Connection, *, code_id: int) -> int:
    status = await conn.execute(DELETE, code_id)
    return int(status.split()[-1])


async def delete_invalid(conn: Connection) -> int:
    status = await conn.execute(DELETE_INVALID)
    return int(status.split()[-1])
