"""SQL for API keys (`tokens`); keys are stored encrypted and found by their HMAC."""

from __future__ import annotations

from dataclasses import dataclass

from services.accounts.records import TokenRecord
from services.accounts.types import Conn

TOKEN_COLUMNS = (
    "id, user_id, key_enc, name, status, created_time, accessed_time, expired_time,"
    ' unlimited_quota, model_limits_enabled, model_limits, allow_ips, "group",'
    " rate_limit_enabled, rate_limit_period, rate_limit_count, rate_limit_success"
)


@dataclass(frozen=True, slots=True)
class TokenFields:
    """The editable fields of a token, validated by the caller."""

    name: str
    status: int
    expired_time: int
    unlimited_quota: bool
    model_limits_enabled: bool
    model_limits: list[str]
    allow_ips: list[str]
    group: str
    rate_limit_enabled: bool
    rate_limit_period: int
    rate_limit_count: int
    rate_limit_success: int


INSERT_TOKEN = f"""
INSERT INTO tokens (user_id, key_enc, key_hash, created_time, name, status, expired_time,
                    unlimited_quota, model_limits_enabled, model_limits, allow_ips, "group",
                    rate_limit_enabled, rate_limit_period, rate_limit_count, rate_limit_success)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
RETURNING {TOKEN_COLUMNS}
"""
UPDATE_TOKEN = f"""
UPDATE tokens SET name = $3, status = $4, expired_time = $5, unlimited_quota = $6,
       model_limits_enabled = $7, model_limits = $8, allow_ips = $9, "group" = $10,
       rate_limit_enabled = $11, rate_limit_period = $12, rate_limit_count = $13,
       rate_limit_success = $14
WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL
RETURNING {TOKEN_COLUMNS}
"""
UPDATE_STATUS = f"""
UPDATE tokens SET status = $3 WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL
RETURNING {TOKEN_COLUMNS}
"""
GET_TOKEN = f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1 AND deleted_at IS NULL"
GET_OWN_TOKEN = GET_TOKEN + " AND user_id = $2"
TOKEN_BY_HASH = f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE key_hash = $1 AND deleted_at IS NULL"
_LIST_FILTER = """
FROM tokens WHERE user_id = $1 AND deleted_at IS NULL AND ($2 = '' OR name ILIKE '%' || $2 || '%')
"""
LIST_TOKENS = f"SELECT {TOKEN_COLUMNS} {_LIST_FILTER} ORDER BY id DESC LIMIT $3 OFFSET $4"
COUNT_TOKENS = f"SELECT count(*) {_LIST_FILTER}"
SOFT_DELETE = """
UPDATE tokens SET deleted_at = $3
WHERE user_id = $1 AND id = ANY($2::bigint[]) AND deleted_at IS NULL
RETURNING id
"""
TOUCH = "UPDATE tokens SET accessed_time = $2 WHERE id = $1 AND accessed_time < $2"
CURRENT_ROUTING_VERSION = "SELECT version FROM routing_state WHERE id = 1"


def _field_args(fields: TokenFields) -> tuple[object, ...]:
    return (
        fields.name, fields.status, fields.expired_time, fields.unlimited_quota,
        fields.model_limits_enabled, fields.model_limits, fields.allow_ips, fields.group,
        fields.rate_limit_enabled, fields.rate_limit_period, fields.rate_limit_count,
        fields.rate_limit_success,
    )  # fmt: skip


async def insert_token(
    conn: Conn,
    *,
    user_id: int,
    key_enc: str,
    key_hash: str,
    now: int,
    fields: TokenFields,
) -> TokenRecord:
    row = await conn.fetchrow(INSERT_TOKEN, user_id, key_enc, key_hash, now, *_field_args(fields))
    assert row is not None
    return TokenRecord.of(row)


async def update_token(
    conn: Conn, *, token_id: int, user_id: int, fields: TokenFields
) -> TokenRecord | None:
    return TokenRecord.maybe(
        await conn.fetchrow(UPDATE_TOKEN, token_id, user_id, *_field_args(fields))
    )


async def update_status(
    conn: Conn, *, token_id: int, user_id: int, status: int
) -> TokenRecord | None:
    return TokenRecord.maybe(await conn.fetchrow(UPDATE_STATUS, token_id, user_id, status))


async def get_token(conn: Conn, *, token_id: int, user_id: int = 0) -> TokenRecord | None:
    """The token by id; when user_id is non-zero, only if that user owns it."""
    if user_id:
        return TokenRecord.maybe(await conn.fetchrow(GET_OWN_TOKEN, token_id, user_id))
    return TokenRecord.maybe(await conn.fetchrow(GET_TOKEN, token_id))


async def token_by_hash(conn: Conn, *, key_hash: str) -> TokenRecord | None:
    return TokenRecord.maybe(await conn.fetchrow(TOKEN_BY_HASH, key_hash))


async def list_tokens(
    conn: Conn, *, user_id: int, keyword: str, limit: int, offset: int
) -> tuple[list[TokenRecord], int]:
    rows = await conn.fetch(LIST_TOKENS, user_id, keyword, limit, offset)
    total: int = await conn.fetchval(COUNT_TOKENS, user_id, keyword)
    return [TokenRecord.of(row) for row in rows], total


async def soft_delete(conn: Conn, *, user_id: int, ids: list[int], now: int) -> list[int]:
    rows = await conn.fetch(SOFT_DELETE, user_id, ids, now)
    return [row["id"] for row in rows]


async def touch(conn: Conn, *, token_id: int, now: int) -> None:
    await conn.execute(TOUCH, token_id, now)


async def current_routing_version(conn: Conn) -> int:
    version: int = await conn.fetchval(CURRENT_ROUTING_VERSION)
    return version
