"""SQL for setups, users, sessions and access tokens (the caller owns the transaction)."""

from __future__ import annotations

from typing import Any

from services.accounts.records import SessionRecord, SetupRecord, UserRecord
from services.accounts.types import Conn

USER_COLUMNS = (
    'id, username, password_hash, display_name, email, role, status, "group", aff_code,'
    " aff_count, inviter_id, setting, github_id, oidc_id, wechat_id, telegram_id,"
    " linux_do_id, idc_flare_id, created_at, deleted_at"
)

GET_SETUP = "SELECT root_user_id, initialized_at FROM setups WHERE id = 1"
INSERT_SETUP = (
    "INSERT INTO setups (id, root_user_id, initialized_at) VALUES (1, $1, $2)"
    " ON CONFLICT (id) DO NOTHING"
)
LOCK_SETUP = "SELECT pg_advisory_xact_lock(hashtext('veloera-accounts-setup'))"
ROOT_EXISTS = "SELECT EXISTS (SELECT 1 FROM users WHERE role = 100 AND deleted_at IS NULL)"

INSERT_USER = f"""
INSERT INTO users (username, password_hash, display_name, email, role, "group", aff_code,
                   inviter_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING {USER_COLUMNS}
"""
GET_USER = f"SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"
GET_USER_FOR_UPDATE = GET_USER + " FOR UPDATE"
GET_USER_BY_NAME = f"SELECT {USER_COLUMNS} FROM users WHERE username = $1 AND deleted_at IS NULL"
USERNAME_TAKEN = "SELECT EXISTS (SELECT 1 FROM users WHERE username = $1 AND id <> $2)"
EMAIL_TAKEN = "SELECT EXISTS (SELECT 1 FROM users WHERE email = $1 AND id <> $2)"
AFF_CODE_TAKEN = "SELECT EXISTS (SELECT 1 FROM users WHERE aff_code = $1)"
INVITER_BY_AFF = "SELECT id FROM users WHERE aff_code = $1 AND deleted_at IS NULL"
BUMP_AFF_COUNT = "UPDATE users SET aff_count = aff_count + 1 WHERE id = $1"

_LIST_FILTER = """
FROM users
WHERE deleted_at IS NULL
  AND ($1 = '' OR username ILIKE '%' || $1 || '%' OR display_name ILIKE '%' || $1 || '%'
       OR email ILIKE '%' || $1 || '%' OR id::text = $1)
  AND ($2 = '' OR "group" = $2)
  AND ($3 = 0 OR role = $3)
  AND ($4 = 0 OR status = $4)
"""
LIST_USERS = f"SELECT {USER_COLUMNS} {_LIST_FILTER} ORDER BY id DESC LIMIT $5 OFFSET $6"
COUNT_USERS = f"SELECT count(*) {_LIST_FILTER}"

SOFT_DELETE_USER = "UPDATE users SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL"
HARD_DELETE_USER = "DELETE FROM users WHERE id = $1"
SET_ACCESS_TOKEN = "UPDATE users SET access_token_hash = $2 WHERE id = $1 AND deleted_at IS NULL"
USER_BY_ACCESS_TOKEN = (
    f"SELECT {USER_COLUMNS} FROM users WHERE access_token_hash = $1 AND deleted_at IS NULL"
)

INSERT_SESSION = """
INSERT INTO sessions (id_hash, user_id, created_at, expires_at, client_ip, user_agent)
VALUES ($1, $2, $3, $4, $5, $6)
"""
REVOKE_SESSION = "UPDATE sessions SET revoked = true WHERE id_hash = $1"
REVOKE_SESSION_BY_ID = (
    "UPDATE sessions SET revoked = true WHERE id = $1 AND user_id = $2 AND NOT revoked"
)
REVOKE_OTHER_SESSIONS = (
    "UPDATE sessions SET revoked = true WHERE user_id = $1 AND id_hash <> $2 AND NOT revoked"
)
CLEAR_ACCESS_TOKEN = "UPDATE users SET access_token_hash = NULL WHERE id = $1"
LIVE_SESSIONS = """
SELECT id, id_hash, created_at, expires_at, client_ip, user_agent FROM sessions
WHERE user_id = $1 AND NOT revoked AND expires_at > $2 ORDER BY id DESC
"""
SESSION_USER = f"""
SELECT {", ".join("u." + c.strip() for c in USER_COLUMNS.split(","))}
FROM sessions s JOIN users u ON u.id = s.user_id
WHERE s.id_hash = $1 AND NOT s.revoked AND s.expires_at > $2 AND u.deleted_at IS NULL
"""

# Only these columns may be set through update_user (names come from code, never input).
UPDATABLE = frozenset(
    {"username", "display_name", "password_hash", "group", "email", "setting", "role", "status"}
)


async def get_setup(conn: Conn) -> SetupRecord | None:
    return SetupRecord.maybe(await conn.fetchrow(GET_SETUP))


async def lock_setup(conn: Conn) -> None:
    await conn.execute(LOCK_SETUP)


async def root_exists(conn: Conn) -> bool:
    return bool(await conn.fetchval(ROOT_EXISTS))


async def insert_setup(conn: Conn, *, root_user_id: int, now: int) -> None:
    await conn.execute(INSERT_SETUP, root_user_id, now)


async def insert_user(
    conn: Conn,
    *,
    username: str,
    password_hash: str,
    display_name: str,
    email: str,
    role: int,
    group: str,
    aff_code: str,
    inviter_id: int,
    now: int,
) -> UserRecord:
    row = await conn.fetchrow(
        INSERT_USER, username, password_hash, display_name, email, role, group, aff_code,
        inviter_id, now,
    )  # fmt: skip
    assert row is not None
    return UserRecord.of(row)


async def get_user(conn: Conn, *, user_id: int, for_update: bool = False) -> UserRecord | None:
    return UserRecord.maybe(
        await conn.fetchrow(GET_USER_FOR_UPDATE if for_update else GET_USER, user_id)
    )


async def get_user_by_name(conn: Conn, *, username: str) -> UserRecord | None:
    return UserRecord.maybe(await conn.fetchrow(GET_USER_BY_NAME, username))


async def username_taken(conn: Conn, *, username: str, except_id: int = 0) -> bool:
    return bool(await conn.fetchval(USERNAME_TAKEN, username, except_id))


async def email_taken(conn: Conn, *, email: str, except_id: int = 0) -> bool:
    return bool(await conn.fetchval(EMAIL_TAKEN, email, except_id))


async def aff_code_taken(conn: Conn, *, aff_code: str) -> bool:
    return bool(await conn.fetchval(AFF_CODE_TAKEN, aff_code))


async def inviter_by_aff_code(conn: Conn, *, aff_code: str) -> int:
    inviter: int | None = await conn.fetchval(INVITER_BY_AFF, aff_code)
    return inviter or 0


async def bump_aff_count(conn: Conn, *, user_id: int) -> None:
    await conn.execute(BUMP_AFF_COUNT, user_id)


async def list_users(
    conn: Conn,
    *,
    keyword: str,
    group: str,
    limit: int,
    offset: int,
    role: int = 0,
    status: int = 0,
) -> tuple[list[UserRecord], int]:
    rows = await conn.fetch(LIST_USERS, keyword, group, role, status, limit, offset)
    total: int = await conn.fetchval(COUNT_USERS, keyword, group, role, status)
    return [UserRecord.of(row) for row in rows], total


async def update_user(conn: Conn, *, user_id: int, changes: dict[str, Any]) -> UserRecord | None:
    """Set the given columns (a subset of UPDATABLE) and return the updated row."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    if not changes:
        return await get_user(conn, user_id=user_id)
    columns = list(changes)
    assignments = ", ".join(f'"{name}" = ${i}' for i, name in enumerate(columns, start=2))
    sql = (
        f"UPDATE users SET {assignments} WHERE id = $1 AND deleted_at IS NULL"
        f" RETURNING {USER_COLUMNS}"
    )
    return UserRecord.maybe(await conn.fetchrow(sql, user_id, *(changes[name] for name in columns)))


async def soft_delete_user(conn: Conn, *, user_id: int, now: int) -> bool:
    return str(await conn.execute(SOFT_DELETE_USER, user_id, now)) != "UPDATE 0"


async def hard_delete_user(conn: Conn, *, user_id: int) -> bool:
    return str(await conn.execute(HARD_DELETE_USER, user_id)) != "DELETE 0"


async def set_access_token(conn: Conn, *, user_id: int, token_hash: str) -> bool:
    return str(await conn.execute(SET_ACCESS_TOKEN, user_id, token_hash)) != "UPDATE 0"


async def user_by_access_token(conn: Conn, *, token_hash: str) -> UserRecord | None:
    return UserRecord.maybe(await conn.fetchrow(USER_BY_ACCESS_TOKEN, token_hash))


async def insert_session(
    conn: Conn,
    *,
    id_hash: str,
    user_id: int,
    now: int,
    expires_at: int,
    client_ip: str,
    user_agent: str,
) -> None:
    await conn.execute(INSERT_SESSION, id_hash, user_id, now, expires_at, client_ip, user_agent)


async def revoke_session(conn: Conn, *, id_hash: str) -> None:
    await conn.execute(REVOKE_SESSION, id_hash)


async def session_user(conn: Conn, *, id_hash: str, now: int) -> UserRecord | None:
    return UserRecord.maybe(await conn.fetchrow(SESSION_USER, id_hash, now))


async def live_sessions(conn: Conn, *, user_id: int, now: int) -> list[SessionRecord]:
    return [SessionRecord.of(row) for row in await conn.fetch(LIVE_SESSIONS, user_id, now)]


async def revoke_session_by_id(conn: Conn, *, session_id: int, user_id: int) -> bool:
    return str(await conn.execute(REVOKE_SESSION_BY_ID, session_id, user_id)) != "UPDATE 0"


async def revoke_credentials(conn: Conn, *, user_id: int, keep_session_hash: str = "") -> None:
    """After a password change: every session but `keep_session_hash` (the one the user
    changed it from, if any) and the access token stop working."""
    await conn.execute(REVOKE_OTHER_SESSIONS, user_id, keep_session_hash)
    await conn.execute(CLEAR_ACCESS_TOKEN, user_id)


# Third-party identity columns by provider name (controller/github.go, controller/oidc.go).
IDENTITY_COLUMNS = {
    "github": "github_id",
    "oidc": "oidc_id",
    "linuxdo": "linux_do_id",
    "idcflare": "idc_flare_id",
    "telegram": "telegram_id",
    "wechat": "wechat_id",
}
_MAX_USER_ID = "SELECT coalesce(max(id), 0) FROM users"


def _identity_column(column: str) -> str:
    """`column` when it is an identity column (it is spliced into SQL)."""
    if column not in IDENTITY_COLUMNS.values():
        raise ValueError(f"not an identity column: {column}")
    return column


async def user_by_identity(conn: Conn, *, column: str, subject: str) -> UserRecord | None:
    """The user (soft-deleted ones included) bound to `subject`."""
    column = _identity_column(column)
    sql = f"SELECT {USER_COLUMNS} FROM users WHERE {column} = $1"
    return UserRecord.maybe(await conn.fetchrow(sql, subject))


async def set_identity(conn: Conn, *, user_id: int, column: str, subject: str) -> UserRecord | None:
    """Bind (or with "" clear) the identity; the updated live user, None when there is none."""
    column = _identity_column(column)
    row = await conn.fetchrow(
        f"UPDATE users SET {column} = $2 WHERE id = $1 AND deleted_at IS NULL"
        f" RETURNING {USER_COLUMNS}",
        user_id,
        subject,
    )
    return UserRecord.maybe(row)


async def max_user_id(conn: Conn) -> int:
    return int(await conn.fetchval(_MAX_USER_ID))
