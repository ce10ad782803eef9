"""SQL for bulk channel operations: by tag, tagging many, fixing abilities, key reveal audit."""

from __future__ import annotations

from services.accounts.channels_repo import CHANNEL_COLUMNS, FIELD_NAMES
from services.accounts.records import ChannelFields, ChannelRecord
from services.accounts.types import Conn

CHANNELS_BY_TAG = f"SELECT {CHANNEL_COLUMNS} FROM channels WHERE tag = $1 ORDER BY id FOR UPDATE"
ALL_CHANNELS = f"SELECT {CHANNEL_COLUMNS} FROM channels ORDER BY id FOR UPDATE"
SET_TAG = "UPDATE channels SET tag = $2 WHERE id = ANY($1::bigint[]) RETURNING id"
SET_ABILITY_TAG = "UPDATE abilities SET tag = $2 WHERE channel_id = ANY($1::bigint[])"
TAGS = "SELECT DISTINCT tag FROM channels WHERE tag <> '' ORDER BY tag"
ORPHAN_ABILITIES = "DELETE FROM abilities WHERE channel_id NOT IN (SELECT id FROM channels)"
INSERT_REVEAL = """
INSERT INTO channel_key_reveals (actor_id, channel_id, key_id, created_at) VALUES ($1, $2, $3, $4)
"""


def fields_of(row: ChannelRecord) -> ChannelFields:
    """The editable fields of a stored channel row."""
    return ChannelFields(**{name: getattr(row, name) for name in FIELD_NAMES})


async def channels_by_tag(conn: Conn, *, tag: str) -> list[ChannelRecord]:
    return [ChannelRecord.of(row) for row in await conn.fetch(CHANNELS_BY_TAG, tag)]


async def all_channels_for_update(conn: Conn) -> list[ChannelRecord]:
    return [ChannelRecord.of(row) for row in await conn.fetch(ALL_CHANNELS)]


async def set_tag(conn: Conn, *, ids: list[int], tag: str) -> list[int]:
    rows = await conn.fetch(SET_TAG, ids, tag)
    changed = [row["id"] for row in rows]
    await conn.execute(SET_ABILITY_TAG, changed, tag)
    return changed


async def tags(conn: Conn) -> list[str]:
    return [row["tag"] for row in await conn.fetch(TAGS)]


async def delete_orphan_abilities(conn: Conn) -> None:
    await conn.execute(ORPHAN_ABILITIES)


async def record_reveal(
    conn: Conn, *, actor_id: int, channel_id: int, key_id: int, now: int
) -> None:
    await conn.execute(INSERT_REVEAL, actor_id, channel_id, key_id, now)
