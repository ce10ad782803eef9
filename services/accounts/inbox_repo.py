"""SQL for the inbox: admin messages, their recipients and per-user read marks."""

from __future__ import annotations

from services.accounts.records import MessageRecord
from services.accounts.types import Conn

MESSAGE_COLUMNS = "m.id, m.title, m.content, m.format, m.to_all, m.created_by, m.created_at,"
MESSAGE_COLUMNS += " m.updated_at"

INSERT_MESSAGE = f"""
INSERT INTO messages AS m (title, content, format, to_all, created_by, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $6)
RETURNING {MESSAGE_COLUMNS}
"""
UPDATE_MESSAGE = f"""
UPDATE messages AS m SET title = $2, content = $3, format = $4, to_all = $5, updated_at = $6
WHERE id = $1
RETURNING {MESSAGE_COLUMNS}
"""
GET_MESSAGE = f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = $1"
DELETE_MESSAGE = "DELETE FROM messages WHERE id = $1"
DELETE_RECIPIENTS = "DELETE FROM message_recipients WHERE message_id = $1"
INSERT_RECIPIENTS = """
INSERT INTO message_recipients (message_id, user_id)
SELECT $1, u.id FROM users u WHERE u.id = ANY($2::bigint[]) AND u.deleted_at IS NULL
ON CONFLICT DO NOTHING
"""
RECIPIENTS = (
    "SELECT message_id, user_id FROM message_recipients WHERE message_id = ANY($1::bigint[])"
    " ORDER BY user_id"
)
_ADMIN_FILTER = "FROM messages m WHERE ($1 = '' OR m.title ILIKE '%' || $1 || '%'"
_ADMIN_FILTER += " OR m.content ILIKE '%' || $1 || '%')"
LIST_ALL = f"SELECT {MESSAGE_COLUMNS} {_ADMIN_FILTER} ORDER BY m.id DESC LIMIT $2 OFFSET $3"
COUNT_ALL = f"SELECT count(*) {_ADMIN_FILTER}"

# A user's messages: sent to everyone (after the user existed) or to the user by name.
_VISIBLE = """
FROM messages m
LEFT JOIN message_reads r ON r.message_id = m.id AND r.user_id = $1
WHERE (m.to_all AND m.created_at >= (SELECT created_at FROM users WHERE id = $1))
   OR EXISTS (SELECT 1 FROM message_recipients mr WHERE mr.message_id = m.id AND mr.user_id = $1)
"""
LIST_FOR_USER = f"""
SELECT {MESSAGE_COLUMNS}, coalesce(r.read_at, 0) AS read_at {_VISIBLE}
  AND ($2 = false OR r.read_at IS NULL)
ORDER BY m.id DESC LIMIT $3 OFFSET $4
"""
COUNT_FOR_USER = f"SELECT count(*) {_VISIBLE} AND ($2 = false OR r.read_at IS NULL)"
VISIBLE_IDS = f"SELECT m.id {_VISIBLE} AND r.read_at IS NULL AND ($2 = 0 OR m.id = $2)"
MARK_READ = """
INSERT INTO message_reads (message_id, user_id, read_at)
SELECT unnest($2::bigint[]), $1, $3 ON CONFLICT DO NOTHING
"""
IS_VISIBLE = f"SELECT EXISTS (SELECT 1 {_VISIBLE} AND m.id = $2)"


async def insert_message(
    conn: Conn, *, title: str, content: str, fmt: str, to_all: bool, created_by: int, now: int
) -> MessageRecord:
    row = await conn.fetchrow(INSERT_MESSAGE, title, content, fmt, to_all, created_by, now)
    assert row is not None
    return MessageRecord.of(row)


async def update_message(
    conn: Conn, *, message_id: int, title: str, content: str, fmt: str, to_all: bool, now: int
) -> MessageRecord | None:
    return MessageRecord.maybe(
        await conn.fetchrow(UPDATE_MESSAGE, message_id, title, content, fmt, to_all, now)
    )


async def get_message(conn: Conn, *, message_id: int) -> MessageRecord | None:
    return MessageRecord.maybe(await conn.fetchrow(GET_MESSAGE, message_id))


async def delete_message(conn: Conn, *, message_id: int) -> bool:
    return str(await conn.execute(DELETE_MESSAGE, message_id)) != "DELETE 0"


async def set_recipients(conn: Conn, *, message_id: int, user_ids: list[int]) -> None:
    await conn.execute(DELETE_RECIPIENTS, message_id)
    if user_ids:
        await conn.execute(INSERT_RECIPIENTS, message_id, user_ids)


async def recipients(conn: Conn, *, message_ids: list[int]) -> dict[int, list[int]]:
    result: dict[int, list[int]] = {}
    for row in await conn.fetch(RECIPIENTS, message_ids):
        result.setdefault(row["message_id"], []).append(row["user_id"])
    return result


async def list_all(
    conn: Conn, *, keyword: str, limit: int, offset: int
) -> tuple[list[MessageRecord], int]:
    rows = await conn.fetch(LIST_ALL, keyword, limit, offset)
    total: int = await conn.fetchval(COUNT_ALL, keyword)
    return [MessageRecord.of(row) for row in rows], total


async def list_for_user(
    conn: Conn, *, user_id: int, unread_only: bool, limit: int, offset: int
) -> tuple[list[MessageRecord], int]:
    rows = await conn.fetch(LIST_FOR_USER, user_id, unread_only, limit, offset)
    total: int = await conn.fetchval(COUNT_FOR_USER, user_id, unread_only)
    return [MessageRecord.of(row) for row in rows], total


async def unread_count(conn: Conn, *, user_id: int) -> int:
    count: int = await conn.fetchval(COUNT_FOR_USER, user_id, True)
    return count


async def is_visible(conn: Conn, *, user_id: int, message_id: int) -> bool:
    return bool(await conn.fetchval(IS_VISIBLE, user_id, message_id))


async def mark_read(conn: Conn, *, user_id: int, message_id: int, now: int) -> None:
    """Mark one message (or every unread one when message_id is 0) read."""
    ids = [row["id"] for row in await conn.fetch(VISIBLE_IDS, user_id, message_id)]
    if ids:
        await conn.execute(MARK_READ, user_id, ids, now)
