"""Storage of TOTP secrets, backup codes and passkeys (migration 0007)."""

from __future__ import annotations

from services.accounts.records import PasskeyRecord, TwoFactorRecord
from services.accounts.types import Conn

GET = "SELECT * FROM user_two_factor WHERE user_id = $1"
GET_FOR_UPDATE = GET + " FOR UPDATE"
ENABLED = "SELECT enabled FROM user_two_factor WHERE user_id = $1"
UPSERT_PENDING = """
INSERT INTO user_two_factor (user_id, secret_enc, created_at) VALUES ($1, $2, $3)
ON CONFLICT (user_id) DO UPDATE
SET secret_enc = excluded.secret_enc, created_at = excluded.created_at, last_step = 0
WHERE NOT user_two_factor.enabled
RETURNING user_id
"""
ENABLE = "UPDATE user_two_factor SET enabled = true, enabled_at = $2 WHERE user_id = $1"
# A step is accepted once: only a later step than the last accepted one moves it on.
TAKE_STEP = """
UPDATE user_two_factor SET last_step = $2 WHERE user_id = $1 AND last_step < $2
RETURNING user_id
"""
DELETE = "DELETE FROM user_two_factor WHERE user_id = $1"
DELETE_BACKUP = "DELETE FROM user_backup_codes WHERE user_id = $1"
INSERT_BACKUP = "INSERT INTO user_backup_codes (user_id, code_hash) VALUES ($1, $2)"
USE_BACKUP = """
UPDATE user_backup_codes SET used_at = $3
WHERE user_id = $1 AND code_hash = $2 AND used_at = 0
RETURNING user_id
"""
BACKUP_LEFT = "SELECT count(*) FROM user_backup_codes WHERE user_id = $1 AND used_at = 0"

LIST_PASSKEYS = "SELECT * FROM user_passkeys WHERE user_id = $1 ORDER BY id"
GET_PASSKEY = "SELECT * FROM user_passkeys WHERE credential_id = $1"
INSERT_PASSKEY = """
INSERT INTO user_passkeys (user_id, credential_id, public_key, sign_count, name, transports,
                           created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *
"""
DELETE_PASSKEY = "DELETE FROM user_passkeys WHERE user_id = $1 AND id = $2"
# A counter that does not grow (when the authenticator keeps one) means a cloned credential.
USE_PASSKEY = """
UPDATE user_passkeys SET sign_count = $2, last_used_at = $3
WHERE credential_id = $1 AND (($2 = 0 AND sign_count = 0) OR $2 > sign_count)
RETURNING *
"""


async def get(conn: Conn, *, user_id: int, for_update: bool = False) -> TwoFactorRecord | None:
    return TwoFactorRecord.maybe(
        await conn.fetchrow(GET_FOR_UPDATE if for_update else GET, user_id)
    )


async def enabled(conn: Conn, *, user_id: int) -> bool:
    """Whether signing in as the user takes a second factor."""
    return bool(await conn.fetchval(ENABLED, user_id))


async def save_pending(conn: Conn, *, user_id: int, secret_enc: str, now: int) -> bool:
    """A new secret, unless two-factor is already on (False then)."""
    return await conn.fetchval(UPSERT_PENDING, user_id, secret_enc, now) is not None


async def enable(conn: Conn, *, user_id: int, now: int) -> None:
    await conn.execute(ENABLE, user_id, now)


async def take_step(conn: Conn, *, user_id: int, step: int) -> bool:
    return await conn.fetchval(TAKE_STEP, user_id, step) is not None


async def remove(conn: Conn, *, user_id: int) -> None:
    await conn.execute(DELETE_BACKUP, user_id)
    await conn.execute(DELETE, user_id)


async def replace_backup_codes(conn: Conn, *, user_id: int, code_hashes: list[str]) -> None:
    await conn.execute(DELETE_BACKUP, user_id)
    await conn.executemany(INSERT_BACKUP, [(user_id, code_hash) for code_hash in code_hashes])


async def use_backup_code(conn: Conn, *, user_id: int, code_hash: str, now: int) -> bool:
    return await conn.fetchval(USE_BACKUP, user_id, code_hash, now) is not None


async def backup_codes_left(conn: Conn, *, user_id: int) -> int:
    return int(await conn.fetchval(BACKUP_LEFT, user_id))


async def list_passkeys(conn: Conn, *, user_id: int) -> list[PasskeyRecord]:
    return [PasskeyRecord.of(row) for row in await conn.fetch(LIST_PASSKEYS, user_id)]


async def get_passkey(conn: Conn, *, credential_id: str) -> PasskeyRecord | None:
    return PasskeyRecord.maybe(await conn.fetchrow(GET_PASSKEY, credential_id))


async def insert_passkey(
    conn: Conn, *, user_id: int, credential_id: str, public_key: bytes, sign_count: int,
    name: str, transports: str, now: int,
) -> PasskeyRecord:  # fmt: skip
    row = await conn.fetchrow(
        INSERT_PASSKEY, user_id, credential_id, public_key, sign_count, name, transports, now
    )
    assert row is not None
    return PasskeyRecord.of(row)


async def delete_passkey(conn: Conn, *, user_id: int, passkey_id: int) -> bool:
    return str(await conn.execute(DELETE_PASSKEY, user_id, passkey_id)) != "DELETE 0"


async def use_passkey(
    conn: Conn, *, credential_id: str, sign_count: int, now: int
) -> PasskeyRecord | None:
    return PasskeyRecord.maybe(await conn.fetchrow(USE_PASSKEY, credential_id, sign_count, now))
