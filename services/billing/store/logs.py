"""Consumption and management log rows (upstream `model/log.go`): insert and filtered listing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from services.shared.db import Connection
from services.shared.errors import InvalidArgument

TYPE_TOPUP = 1
TYPE_CONSUME = 2
TYPE_MANAGE = 3
TYPE_SYSTEM = 4
TYPE_CHECK_IN = 5
TYPE_ERROR = 6

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10

INSERT_LOG = """
INSERT INTO logs (user_id, type, content, username, token_name, model_name, quota,
                  prompt_tokens, completion_tokens, use_time, is_stream, channel_id,
                  channel_name, token_id, "group", other, client_ip, request_id, elapsed_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::jsonb, $17, $18,
        $19)
RETURNING id
"""
# Above this many rows an unfiltered listing reports the estimated total.
EXACT_COUNT_LIMIT = 1_000_000
ESTIMATE_ROWS = """
SELECT sum(c.reltuples)::bigint FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'logs'::regclass AND c.reltuples > 0
"""
_COLUMNS = """id, user_id, created_at, type, content, username, token_name, model_name, quota,
    prompt_tokens, completion_tokens, use_time, is_stream, channel_id, channel_name, token_id,
    "group", other::text AS other, client_ip, request_id, elapsed_ms"""


@dataclass(slots=True)
class LogRow:
    user_id: int
    type: int
    content: str
    username: str = ""
    token_name: str = ""
    model_name: str = ""
    quota: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    use_time: int = 0
    is_stream: bool = False
    channel_id: int = 0
    channel_name: str = ""
    token_id: int = 0
    group: str = ""
    other: dict[str, Any] = field(default_factory=dict)
    client_ip: str = ""
    request_id: str | None = None
    elapsed_ms: int = 0
    id: int = 0
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LogFilter:
    user_id: int = 0
    type: int = 0
    start_timestamp: int = 0
    end_timestamp: int = 0
    username: str = ""
    token_name: str = ""
    model_name: str = ""
    channel_id: int = 0
    group: str = ""


async def insert(conn: Connection, *, row: LogRow) -> int:
    log_id: int = await conn.fetchval(
        INSERT_LOG,
        row.user_id,
        row.type,
        row.content,
        row.username,
        row.token_name,
        row.model_name,
        row.quota,
        row.prompt_tokens,
        row.completion_tokens,
        row.use_time,
        row.is_stream,
        row.channel_id,
        row.channel_name,
        row.token_id,
        row.group,
        orjson.dumps(row.other).decode(),
        row.client_ip,
        row.request_id,
        row.elapsed_ms,
    )
    return log_id


def _where(filters: LogFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []

    def add(sql: str, value: Any) -> None:
        args.append(value)
        clauses.append(sql.format(f"${len(args)}"))

    if filters.user_id:
        add("user_id = {}", filters.user_id)
    if filters.type:
        add("type = {}", filters.type)
    if filters.start_timestamp:
        add("created_at >= to_timestamp({})", filters.start_timestamp)
    if filters.end_timestamp:
        add("created_at <= to_timestamp({})", filters.end_timestamp)
    if filters.username:
        add("username = {}", filters.username)
    if filters.token_name:
        add("token_name = {}", filters.token_name)
    if filters.model_name:
        add("model_name = {}", filters.model_name)
    if filters.channel_id:
        add("channel_id = {}", filters.channel_id)
    if filters.group:
        add('"group" = {}', filters.group)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _row(record: asyncpg.Record) -> LogRow:
    return LogRow(
        id=record["id"],
        user_id=record["user_id"],
        created_at=record["created_at"],
        type=record["type"],
        content=record["content"],
        username=record["username"],
        token_name=record["token_name"],
        model_name=record["model_name"],
        quota=record["quota"],
        prompt_tokens=record["prompt_tokens"],
        completion_tokens=record["completion_tokens"],
        use_time=record["use_time"],
        is_stream=record["is_stream"],
        channel_id=record["channel_id"],
        channel_name=record["channel_name"],
        token_id=record["token_id"],
        group=record["group"],
        other=orjson.loads(record["other"]),
        client_ip=record["client_ip"],
        request_id=record["request_id"],
        elapsed_ms=record["elapsed_ms"],
    )


def encode_cursor(row: LogRow) -> str:
    assert row.created_at is not None
    micros = int(row.created_at.timestamp() * 1_000_000)
    return f"{micros}.{row.id}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    match = _CURSOR.fullmatch(cursor.strip())
    if match is None:
        raise InvalidArgument("cursor is not valid", code="invalid_cursor")
    micros, log_id = int(match.group(1)), int(match.group(2))
    if log_id > _INT64_MAX:
        raise InvalidArgument("cursor is not valid", code="invalid_cursor")
    try:
        return datetime.fromtimestamp(micros / 1_000_000, tz=UTC), log_id
    except (OverflowError, ValueError, OSError):
        # Digits beyond any real timestamp: a forged cursor, not a server fault.
        raise InvalidArgument("cursor is not valid", code="invalid_cursor") from None


_CURSOR = re.compile(r"(\d{1,20})\.(\d{1,20})")
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[LogRow]
    total: int  # -1 when not counted
    next_cursor: str


async def list_page(
    conn: Connection,
    *,
    filters: LogFilter,
    page: int,
    page_size: int,
    cursor: str = "",
    count_total: bool = True,
) -> Page:
    """Newest first by (created_at, id). With `cursor` (keyset pagination) the page follows
    the cursor's row; otherwise `page` (1-based) is an offset kept for compatibility."""
    size = min(page_size if page_size > 0 else DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    where, args = _where(filters)
    total = -1
    if count_total:
        total = await _count(conn, where, args)
    query_args = list(args)
    offset = 0
    if cursor:
        at, log_id = decode_cursor(cursor)
        query_args += [at, log_id]
        n = len(query_args)
        keyset = f"(created_at, id) < (${n - 1}, ${n})"
        where = f"{where} AND {keyset}" if where else f" WHERE {keyset}"
    else:
        offset = (max(page, 1) - 1) * size
    query_args += [size + 1, offset]
    n = len(query_args)
    records = await conn.fetch(
        f"SELECT {_COLUMNS} FROM logs{where} ORDER BY created_at DESC, id DESC "
        f"LIMIT ${n - 1} OFFSET ${n}",
        *query_args,
    )
    rows = [_row(record) for record in records[:size]]
    next_cursor = encode_cursor(rows[-1]) if len(records) > size and rows else ""
    return Page(rows=rows, total=int(total), next_cursor=next_cursor)


async def _count(conn: Connection, where: str, args: list[Any]) -> int:
    """The exact count of the matching rows; without any filter, the planner's estimate once
    the table is big (an exact count of every log row costs seconds and no console needs it)."""
    if not where:
        estimate = int(await conn.fetchval(ESTIMATE_ROWS) or 0)
        if estimate >= EXACT_COUNT_LIMIT:
            return estimate
    return int(await conn.fetchval(f"SELECT count(*) FROM logs{where}", *args))


@dataclass(frozen=True, slots=True)
class Stat:
    quota: int
    count: int
    tokens: int
    window_seconds: int

    @property
    def rpm(self) -> float:
        return self.count * 60 / self.window_seconds

    @property
    def tpm(self) -> float:
        return self.tokens * 60 / self.window_seconds


async def stat(conn: Connection, *, filters: LogFilter, now: float) -> Stat:
    """Quota, requests and tokens of the consume rows matching the filters; RPM and TPM are
    averaged over the window (start..end, or the first matching row..now)."""
    if not filters.type:
        filters = LogFilter(**{**_asdict(filters), "type": TYPE_CONSUME})
    where, args = _where(filters)
    row = await conn.fetchrow(
        "SELECT count(*) AS n, COALESCE(sum(quota), 0) AS quota,"
        " COALESCE(sum(prompt_tokens + completion_tokens), 0) AS tokens,"
        f" extract(epoch FROM min(created_at)) AS first_at FROM logs{where}",
        *args,
    )
    assert row is not None
    end = float(filters.end_timestamp or now)
    start = float(filters.start_timestamp or row["first_at"] or end)
    window = max(int(end - start), 60)
    return Stat(
        quota=int(row["quota"]),
        count=int(row["n"]),
        tokens=int(row["tokens"]),
        window_seconds=window,
    )


def _asdict(filters: LogFilter) -> dict[str, Any]:
    return {name: getattr(filters, name) for name in LogFilter.__slots__}


CHANNEL_USAGE = """
SELECT channel_id, used_quota, request_count FROM channel_usage
WHERE channel_id = ANY($1::bigint[])
"""


async def channel_usage(conn: Connection, *, channel_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Quota and request count served by each channel (kept by a trigger on consume rows)."""
    rows = await conn.fetch(CHANNEL_USAGE, channel_ids)
    return {row["channel_id"]: (row["used_quota"], row["request_count"]) for row in rows}
