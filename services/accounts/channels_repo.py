"""SQL for channels, their keys, the abilities index, options and the routing version."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from services.accounts.records import (
    AbilityRecord,
    ChannelFields,
    ChannelKeyRecord,
    ChannelRecord,
)
from services.accounts.types import Conn
from services.shared.statuses import ChannelStatus

CHANNEL_COLUMNS = (
    "id, type, name, base_url, models, groups, priority, weight, status, model_mapping,"
    " status_code_mapping, model_prefix, system_prompt, tag, test_model, openai_organization,"
    " other, setting, param_override, auto_ban, created_time, test_time, response_time,"
    " balance, balance_updated_time, used_quota, status_reason, status_time"
)
KEY_COLUMNS = (
    "id, channel_id, idx, key_enc, key_hash, status, last_error, used_quota, request_count,"
    " failure_count"
)


# The editable columns, in the order the INSERT and UPDATE below bind them.
FIELD_NAMES = tuple(f.name for f in dataclasses.fields(ChannelFields))
_PLACEHOLDERS = ", ".join(f"${i}" for i in range(2, len(FIELD_NAMES) + 2))

INSERT_CHANNEL = f"""
INSERT INTO channels (created_time, {", ".join(FIELD_NAMES)})
VALUES ($1, {_PLACEHOLDERS})
RETURNING {CHANNEL_COLUMNS}
"""
UPDATE_CHANNEL = f"""
UPDATE channels SET {", ".join(f"{n} = ${i}" for i, n in enumerate(FIELD_NAMES, start=2))},
       status_reason = CASE WHEN status = ${FIELD_NAMES.index("status") + 2}
                            THEN status_reason ELSE '' END
WHERE id = $1
RETURNING {CHANNEL_COLUMNS}
"""
GET_CHANNEL = f"SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = $1"
GET_CHANNEL_FOR_UPDATE = GET_CHANNEL + " FOR UPDATE"
_LIST_FILTER = """
FROM channels
WHERE ($1 = '' OR name ILIKE '%' || $1 || '%' OR id::text = $1 OR tag = $1
       OR base_url ILIKE '%' || $1 || '%')
  AND ($2 = '' OR $2 = ANY(groups))
  AND ($3 = '' OR $3 = ANY(models))
  AND (cardinality($4::int[]) = 0 OR type = ANY($4::int[]))
  AND (cardinality($5::smallint[]) = 0 OR status = ANY($5::smallint[]))
  AND (cardinality($6::text[]) = 0 OR tag = ANY($6::text[]))
"""
LIST_CHANNELS = f"""
SELECT {CHANNEL_COLUMNS} {_LIST_FILTER} ORDER BY priority DESC, id DESC LIMIT $7 OFFSET $8
"""
COUNT_CHANNELS = f"SELECT count(*) {_LIST_FILTER}"
DELETE_CHANNELS = "DELETE FROM channels WHERE id = ANY($1::bigint[]) RETURNING id"
DELETE_DISABLED = "DELETE FROM channels WHERE status IN (2, 3) RETURNING id"
ROUTABLE_CHANNELS = f"SELECT {CHANNEL_COLUMNS} FROM channels WHERE status IN (1, 3) ORDER BY id"
SET_CHANNEL_STATUS = """
UPDATE channels SET status = $2, status_reason = $3, status_time = $4 WHERE id = $1
"""

CHANNEL_KEYS = f"SELECT {KEY_COLUMNS} FROM channel_keys WHERE channel_id = $1 ORDER BY idx"
KEYS_OF_CHANNELS = (
    f"SELECT {KEY_COLUMNS} FROM channel_keys WHERE channel_id = ANY($1::bigint[])"
    " ORDER BY channel_id, idx"
)
DELETE_KEYS = "DELETE FROM channel_keys WHERE channel_id = $1"
INSERT_KEY = """
INSERT INTO channel_keys (channel_id, idx, key_enc, key_hash, status, last_error, used_quota,
                          request_count, failure_count)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""
REENABLE_KEYS = "UPDATE channel_keys SET status = 1 WHERE channel_id = $1 AND status = 3"
GET_KEY_FOR_UPDATE = f"SELECT {KEY_COLUMNS} FROM channel_keys WHERE id = $1 FOR UPDATE"
RECORD_RESULT = """
UPDATE channel_keys
SET request_count = request_count + 1,
    failure_count = failure_count + CASE WHEN $2 THEN 0 ELSE 1 END,
    last_error = CASE WHEN $2 THEN last_error ELSE $3 END,
    status = $4
WHERE id = $1
"""

DELETE_ABILITIES = "DELETE FROM abilities WHERE channel_id = $1"
INSERT_ABILITIES = """
INSERT INTO abilities ("group", model, channel_id, priority, weight, enabled, tag)
SELECT g, m, $1, $4, $5, $6, $7 FROM unnest($2::text[]) AS g CROSS JOIN unnest($3::text[]) AS m
"""
SET_ABILITIES_ENABLED = "UPDATE abilities SET enabled = $2 WHERE channel_id = $1"
ALL_ABILITIES = (
    'SELECT "group", model, channel_id, priority, weight, enabled, tag FROM abilities'
    ' ORDER BY "group", model, priority DESC, channel_id'
)

BUMP_VERSION = "UPDATE routing_state SET version = version + 1 WHERE id = 1 RETURNING version"
GET_VERSION = "SELECT version FROM routing_state WHERE id = 1"
LOG_CHANGE = """
INSERT INTO routing_changes (version, channel_ids, options, everything) VALUES ($1, $2, $3, $4)
"""
PRUNE_CHANGES = "DELETE FROM routing_changes WHERE version <= $1"
CHANGES_SINCE = """
SELECT version, channel_ids, options, everything FROM routing_changes
WHERE version > $1 ORDER BY version
"""
ROUTABLE_CHANNELS_IN = (
    f"SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = ANY($1::bigint[]) AND status IN (1, 3)"
    " ORDER BY id"
)
ABILITIES_OF_CHANNELS = (
    'SELECT "group", model, channel_id, priority, weight, enabled, tag FROM abilities'
    ' WHERE channel_id = ANY($1::bigint[]) ORDER BY "group", model, priority DESC, channel_id'
)
CHANGE_LOG_LENGTH = 10_000  # versions a relay may fall behind and still get a delta
ALL_OPTIONS = "SELECT key, value FROM options"
GET_OPTION = "SELECT value FROM options WHERE key = $1"
UPSERT_OPTION = (
    "INSERT INTO options (key, value) VALUES ($1, $2)"
    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
)


def _field_args(fields: ChannelFields) -> list[object]:
    return [getattr(fields, name) for name in FIELD_NAMES]


async def insert_channel(conn: Conn, *, fields: ChannelFields, now: int) -> ChannelRecord:
    row = await conn.fetchrow(INSERT_CHANNEL, now, *_field_args(fields))
    assert row is not None
    return ChannelRecord.of(row)


async def update_channel(
    conn: Conn, *, channel_id: int, fields: ChannelFields
) -> ChannelRecord | None:
    """Replace the editable fields; a status change clears the stored status reason."""
    return ChannelRecord.maybe(
        await conn.fetchrow(UPDATE_CHANNEL, channel_id, *_field_args(fields))
    )


async def get_channel(
    conn: Conn, *, channel_id: int, for_update: bool = False
) -> ChannelRecord | None:
    sql = GET_CHANNEL_FOR_UPDATE if for_update else GET_CHANNEL
    return ChannelRecord.maybe(await conn.fetchrow(sql, channel_id))


async def list_channels(
    conn: Conn,
    *,
    keyword: str,
    group: str,
    model: str,
    types: list[int],
    statuses: list[int],
    tags: list[str],
    limit: int,
    offset: int,
) -> tuple[list[ChannelRecord], int]:
    args = (keyword, group, model, types, statuses, tags)
    rows = await conn.fetch(LIST_CHANNELS, *args, limit, offset)
    total: int = await conn.fetchval(COUNT_CHANNELS, *args)
    return [ChannelRecord.of(row) for row in rows], total


async def delete_channels(conn: Conn, *, ids: list[int], all_disabled: bool) -> list[int]:
    deleted = {row["id"] for row in await conn.fetch(DELETE_CHANNELS, ids)} if ids else set()
    if all_disabled:
        deleted |= {row["id"] for row in await conn.fetch(DELETE_DISABLED)}
    return sorted(deleted)


async def routable_channels(conn: Conn) -> list[ChannelRecord]:
    return [ChannelRecord.of(row) for row in await conn.fetch(ROUTABLE_CHANNELS)]


async def set_channel_status(
    conn: Conn, *, channel_id: int, status: int, reason: str, now: int
) -> None:
    await conn.execute(SET_CHANNEL_STATUS, channel_id, status, reason, now)
    await conn.execute(SET_ABILITIES_ENABLED, channel_id, status == ChannelStatus.ENABLED)


async def channel_keys(conn: Conn, *, channel_id: int) -> list[ChannelKeyRecord]:
    return [ChannelKeyRecord.of(row) for row in await conn.fetch(CHANNEL_KEYS, channel_id)]


async def keys_of_channels(conn: Conn, *, channel_ids: list[int]) -> list[ChannelKeyRecord]:
    rows = await conn.fetch(KEYS_OF_CHANNELS, channel_ids)
    return [ChannelKeyRecord.of(row) for row in rows]


async def replace_keys(
    conn: Conn,
    *,
    channel_id: int,
    new_keys: list[tuple[str, str]],
    kept: dict[str, ChannelKeyRecord],
) -> None:
    """Store `new_keys` (encrypted, hash) in order; a key whose hash is in `kept` keeps its
    status and counters."""
    await conn.execute(DELETE_KEYS, channel_id)
    rows = []
    for index, (key_enc, key_hash) in enumerate(new_keys):
        old = kept.get(key_hash)
        rows.append(
            (
                channel_id, index, key_enc, key_hash,
                old.status if old else 1, old.last_error if old else "",
                old.used_quota if old else 0, old.request_count if old else 0,
                old.failure_count if old else 0,
            )
        )  # fmt: skip
    await conn.executemany(INSERT_KEY, rows)


async def reenable_keys(conn: Conn, *, channel_id: int) -> None:
    """An admin enabling a channel also enables its automatically disabled keys."""
    await conn.execute(REENABLE_KEYS, channel_id)


async def lock_key(
    conn: Conn, *, channel_id: int, key_id: int
) -> tuple[ChannelRecord, ChannelKeyRecord] | None:
    """A channel and one of its keys, both locked for update (channel first, as every writer
    takes them); None when either is gone or the key is another channel's."""
    channel = await get_channel(conn, channel_id=channel_id, for_update=True)
    key = ChannelKeyRecord.maybe(await conn.fetchrow(GET_KEY_FOR_UPDATE, key_id))
    if channel is None or key is None or key.channel_id != channel.id:
        return None
    return channel, key


async def record_result(conn: Conn, *, key_id: int, success: bool, error: str, status: int) -> None:
    await conn.execute(RECORD_RESULT, key_id, success, error, status)


async def rebuild_abilities(
    conn: Conn,
    *,
    channel_id: int,
    groups: list[str],
    models: list[str],
    priority: int,
    weight: int,
    enabled: bool,
    tag: str,
) -> None:
    await conn.execute(DELETE_ABILITIES, channel_id)
    await conn.execute(INSERT_ABILITIES, channel_id, groups, models, priority, weight, enabled, tag)


async def all_abilities(conn: Conn) -> list[AbilityRecord]:
    return [AbilityRecord.of(row) for row in await conn.fetch(ALL_ABILITIES)]


async def bump_version(
    conn: Conn,
    *,
    channel_ids: Iterable[int] = (),
    options: bool = False,
    everything: bool = False,
) -> int:
    """Next routing version, logged with what it changed (same transaction as the change)."""
    version: int = await conn.fetchval(BUMP_VERSION)
    await conn.execute(LOG_CHANGE, version, sorted(set(channel_ids)), options, everything)
    await conn.execute(PRUNE_CHANGES, version - CHANGE_LOG_LENGTH)
    return version


@dataclass(frozen=True, slots=True)
class RoutingChanges:
    """What changed after a version: `complete` is False when the log no longer reaches back
    that far or a change touched everything (the caller sends a full snapshot)."""

    complete: bool
    channel_ids: list[int]
    options: bool


async def changes_since(conn: Conn, *, since: int, until: int) -> RoutingChanges:
    rows = await conn.fetch(CHANGES_SINCE, since)
    rows = [row for row in rows if row["version"] <= until]
    complete = len(rows) == until - since and not any(row["everything"] for row in rows)
    ids: dict[int, None] = {}
    for row in rows:
        ids.update(dict.fromkeys(row["channel_ids"]))
    return RoutingChanges(complete, list(ids), any(row["options"] for row in rows))


async def routable_channels_in(conn: Conn, *, channel_ids: list[int]) -> list[ChannelRecord]:
    return [ChannelRecord.of(row) for row in await conn.fetch(ROUTABLE_CHANNELS_IN, channel_ids)]


async def abilities_of_channels(conn: Conn, *, channel_ids: list[int]) -> list[AbilityRecord]:
    rows = await conn.fetch(ABILITIES_OF_CHANNELS, channel_ids)
    return [AbilityRecord.of(row) for row in rows]


async def get_version(conn: Conn) -> int:
    version: int = await conn.fetchval(GET_VERSION)
    return version


async def all_options(conn: Conn) -> dict[str, str]:
    return {row["key"]: row["value"] for row in await conn.fetch(ALL_OPTIONS)}


async def get_option(conn: Conn, *, key: str) -> str | None:
    value: str | None = await conn.fetchval(GET_OPTION, key)
    return value


async def upsert_option(conn: Conn, *, key: str, value: str) -> None:
    await conn.execute(UPSERT_OPTION, key, value)


ALL_CHANNELS = f"SELECT {CHANNEL_COLUMNS} FROM channels ORDER BY id"
CHANNELS_BY_IDS = f"SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = ANY($1::bigint[]) ORDER BY id"
RECORD_TEST = "UPDATE channels SET test_time = $2, response_time = $3 WHERE id = $1"
RECORD_TEST_KEY = """
UPDATE channel_keys SET status = $2, last_error = CASE WHEN $3 = '' THEN last_error ELSE $3 END
WHERE id = $1
"""
RECORD_BALANCE = (
    "UPDATE channels SET balance = $2, balance_updated_time = $3 WHERE id = $1 RETURNING id"
)


async def all_channels(conn: Conn) -> list[ChannelRecord]:
    return [ChannelRecord.of(row) for row in await conn.fetch(ALL_CHANNELS)]


async def channels_by_ids(conn: Conn, *, channel_ids: list[int]) -> list[ChannelRecord]:
    return [ChannelRecord.of(row) for row in await conn.fetch(CHANNELS_BY_IDS, channel_ids)]


async def record_test(conn: Conn, *, channel_id: int, test_time: int, response_time: int) -> None:
    await conn.execute(RECORD_TEST, channel_id, test_time, response_time)


async def record_test_key(conn: Conn, *, key_id: int, status: int, error: str) -> None:
    """A tested key's status; a failed test's error becomes its last error."""
    await conn.execute(RECORD_TEST_KEY, key_id, status, error)


async def record_balance(conn: Conn, *, channel_id: int, balance: float, now: int) -> bool:
    return await conn.fetchval(RECORD_BALANCE, channel_id, balance, now) is not None
