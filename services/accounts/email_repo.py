"""SQL for email verification codes and password-reset tokens (hashes only)."""

from __future__ import annotations

from services.accounts.records import EmailCodeRecord
from services.accounts.types import Conn

INSERT_CODE = """
INSERT INTO email_codes (email, purpose, code_hash, user_id, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
"""
LAST_SENT = "SELECT max(created_at) FROM email_codes WHERE email = $1 AND purpose = $2"
LOCK_ADDRESS = "SELECT pg_advisory_xact_lock(hashtext('veloera-email:' || $1))"
LIVE_CODE = """
SELECT id, code_hash, user_id, attempts FROM email_codes
WHERE email = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 AND attempts < $4
ORDER BY id DESC LIMIT 1
"""
COUNT_ATTEMPT = "UPDATE email_codes SET attempts = attempts + 1 WHERE id = $1"
CONSUME = "UPDATE email_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL"
RETIRE_OTHERS = """
UPDATE email_codes SET used_at = $3 WHERE email = $1 AND purpose = $2 AND used_at IS NULL
"""
DELETE_CODE = "DELETE FROM email_codes WHERE id = $1"
PURGE_OLD = "DELETE FROM email_codes WHERE expires_at < $1"
GET_USER_BY_EMAIL = """
SELECT id FROM users WHERE lower(email) = $1 AND deleted_at IS NULL
ORDER BY id LIMIT 1
"""
EMAIL_TAKEN_CI = "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = $1 AND id <> $2)"


async def lock_address(conn: Conn, *, email: str) -> None:
    await conn.execute(LOCK_ADDRESS, email)


async def last_sent(conn: Conn, *, email: str, purpose: str) -> int:
    value: int | None = await conn.fetchval(LAST_SENT, email, purpose)
    return value or 0


async def insert_code(
    conn: Conn, *, email: str, purpose: str, code_hash: str, user_id: int, now: int, ttl: int
) -> int:
    await conn.execute(RETIRE_OTHERS, email, purpose, now)
    row_id: int = await conn.fetchval(
        INSERT_CODE + " RETURNING id", email, purpose, code_hash, user_id, now, now + ttl
    )
    return row_id


async def live_code(
    conn: Conn, *, email: str, purpose: str, now: int, max_attempts: int
) -> EmailCodeRecord | None:
    return EmailCodeRecord.maybe(await conn.fetchrow(LIVE_CODE, email, purpose, now, max_attempts))


async def count_attempt(conn: Conn, *, code_id: int) -> None:
    await conn.execute(COUNT_ATTEMPT, code_id)


async def consume(conn: Conn, *, code_id: int, now: int) -> bool:
    return str(await conn.execute(CONSUME, code_id, now)) != "UPDATE 0"


async def delete_code(conn: Conn, *, code_id: int) -> None:
    await conn.execute(DELETE_CODE, code_id)


async def purge_expired(conn: Conn, *, before: int) -> None:
    await conn.execute(PURGE_OLD, before)


async def user_by_email(conn: Conn, *, email: str) -> int | None:
    """The id of the live user with this address (case-insensitive), if any."""
    user_id: int | None = await conn.fetchval(GET_USER_BY_EMAIL, email)
    return user_id


async def email_taken(conn: Conn, *, email: str, except_id: int = 0) -> bool:
    return bool(await conn.fetchval(EMAIL_TAKEN_CI, email, except_id))
