"""Consumption and management log rows (upstream `model/log.go`): insert and filtered listing."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from services.shared.db import Connection, Where
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
# Page totals count at most this many rows exactly when the hourly rollups cannot answer (user
# with another filter, three filters, username or token name): beyond it the total is capped.
COUNT_CAP = 10_000
HOUR = 3600
# Unix times the filters accept: 1970 up to the last day of year 9999 (PostgreSQL's and
# Python's timestamps both end there).
MAX_TIMESTAMP = 253_402_214_400
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


def insert_values(row: LogRow) -> tuple[Any, ...]:
    """The row's values in INSERT_LOG's column order (one insert, or a batch by columns)."""
    return (
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


async def insert(conn: Connection, *, row: LogRow) -> int:
    log_id: int = await conn.fetchval(INSERT_LOG, *insert_values(row))
    return log_id


def _check(filters: LogFilter) -> None:
    for value in (filters.start_timestamp, filters.end_timestamp):
        if not 0 <= value <= MAX_TIMESTAMP:
            raise InvalidArgument("timestamps must be unix seconds between 1970 and 9999")


def _where(
    filters: LogFilter, *, since: datetime | None = None, before: datetime | None = None
) -> tuple[str, list[object]]:
    """The WHERE clause of the filters; `since` (inclusive) and `before` (exclusive) bound
    created_at further, for the partial hours at the edges of a rollup range."""
    where = Where()
    add = where.add
    if since is not None:
        add("created_at >= {}", since)
    if before is not None:
        add("created_at < {}", before)
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
    return where.sql(), where.args


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


_ONE_HOUR = timedelta(hours=1)
_CURSOR = re.compile(r"(\d{1,20})\.(\d{1,20})")
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[LogRow]
    total: int  # -1 when not counted
    next_cursor: str
    total_capped: bool = False  # `total` is COUNT_CAP: at least that many rows match


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
    _check(filters)
    size = min(page_size if page_size > 0 else DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    where, args = _where(filters)
    total, capped = -1, False
    if count_total:
        total, capped = await _count(conn, filters)
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
    return Page(rows=rows, total=total, next_cursor=next_cursor, total_capped=capped)


async def _count(conn: Connection, filters: LogFilter) -> tuple[int, bool]:
    """(total, capped): exact from the hourly rollups when one filter dimension at most is
    set; otherwise counted up to COUNT_CAP (one more row read tells there are more)."""
    found = await totals(conn, filters=filters)
    if found is not None:
        return found.count, False
    where, args = _where(filters)
    n = int(
        await conn.fetchval(
            f"SELECT count(*) FROM (SELECT 1 FROM logs{where} LIMIT {COUNT_CAP + 1}) s", *args
        )
    )
    return min(n, COUNT_CAP), n > COUNT_CAP


@dataclass(frozen=True, slots=True)
class Totals:
    count: int
    quota: int
    tokens: int
    first_at: datetime | None  # the earliest matching row


# The filter dimensions (and pairs) log_hourly keeps, as its `dim` column names them.
ROLLUP_DIMS = frozenset(
    {"", "model", "channel", "group", "user", "model+channel", "model+group", "channel+group"}
)


def _rollup_key(filters: LogFilter) -> tuple[str, str] | None:
    """The log_hourly (dim, key) answering these filters; None when they need the rows."""
    if filters.username or filters.token_name:
        return None
    dims = [
        (dim, str(value))
        for dim, value in (
            ("model", filters.model_name),
            ("channel", filters.channel_id),
            ("group", filters.group),
            ("user", filters.user_id),
        )
        if value
    ]
    dim = "+".join(name for name, _ in dims)
    if dim not in ROLLUP_DIMS:
        return None
    return dim, "\x1f".join(value for _, value in dims)


def _hour_bounds(filters: LogFilter) -> tuple[datetime | None, datetime | None]:
    """The whole hours inside [start, end]: from the first hour starting at or after start to
    the hour holding end (exclusive); None where the range is open."""
    low = high = None
    if filters.start_timestamp:
        low = datetime.fromtimestamp(-(-filters.start_timestamp // HOUR) * HOUR, tz=UTC)
    if filters.end_timestamp:
        high = datetime.fromtimestamp(filters.end_timestamp // HOUR * HOUR, tz=UTC)
    return low, high


ROLLUP_TOTALS = """
SELECT COALESCE(sum(count), 0) AS n, COALESCE(sum(quota), 0) AS quota,
       COALESCE(sum(tokens), 0) AS tokens, min(hour) AS first_hour
FROM log_hourly
WHERE dim = $1 AND key = $2 AND ($3 = 0 OR type = $3)
  AND ($4::timestamptz IS NULL OR hour >= $4) AND ($5::timestamptz IS NULL OR hour < $5)
  AND count > 0
"""
RAW_TOTALS = """SELECT count(*) AS n, COALESCE(sum(quota), 0) AS quota,
    COALESCE(sum(prompt_tokens + completion_tokens), 0) AS tokens, min(created_at) AS first_at
FROM logs"""


async def totals(conn: Connection, *, filters: LogFilter) -> Totals | None:
    """Count, quota and tokens of the rows matching the filters, read from the hourly rollups
    for whole hours and from the logs for the partial hours at the range's edges; None when
    the filters combine dimensions the rollups do not keep."""
    key = _rollup_key(filters)
    if key is None:
        return None
    low, high = _hour_bounds(filters)
    if low is not None and high is not None and low >= high:
        return await _raw_totals(conn, filters)  # inside two hours: the rows are few
    row = await conn.fetchrow(ROLLUP_TOTALS, *key, filters.type, low, high)
    assert row is not None
    parts = [Totals(int(row["n"]), int(row["quota"]), int(row["tokens"]), None)]
    whole = _replace(filters, start_timestamp=0, end_timestamp=0)
    if low is not None and filters.start_timestamp < low.timestamp():
        edge = _replace(whole, start_timestamp=filters.start_timestamp)
        parts.insert(0, await _raw_totals(conn, edge, before=low))
    if high is not None:
        edge = _replace(whole, end_timestamp=filters.end_timestamp)
        parts.append(await _raw_totals(conn, edge, since=high))
    first_at = parts[0].first_at
    if first_at is None and row["first_hour"] is not None:
        # The earliest row of the first whole hour (for the stats' window), off the index.
        hour = row["first_hour"]
        where, args = _where(whole, since=hour, before=hour + _ONE_HOUR)
        first_at = await conn.fetchval(f"SELECT min(created_at) FROM logs{where}", *args)
    if first_at is None:
        first_at = parts[-1].first_at
    return Totals(
        count=sum(part.count for part in parts),
        quota=sum(part.quota for part in parts),
        tokens=sum(part.tokens for part in parts),
        first_at=first_at,
    )


async def _raw_totals(
    conn: Connection,
    filters: LogFilter,
    *,
    since: datetime | None = None,
    before: datetime | None = None,
) -> Totals:
    where, args = _where(filters, since=since, before=before)
    row = await conn.fetchrow(RAW_TOTALS + where, *args)
    assert row is not None
    return Totals(int(row["n"]), int(row["quota"]), int(row["tokens"]), row["first_at"])


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
    _check(filters)
    if not filters.type:
        filters = _replace(filters, type=TYPE_CONSUME)
    found = await totals(conn, filters=filters)
    if found is None:
        found = await _raw_totals(conn, filters)
    end = float(filters.end_timestamp or now)
    first_at = found.first_at.timestamp() if found.first_at is not None else end
    start = float(filters.start_timestamp or first_at)
    window = max(int(end - start), 60)
    return Stat(quota=found.quota, count=found.count, tokens=found.tokens, window_seconds=window)


def _replace(filters: LogFilter, **changes: Any) -> LogFilter:
    return dataclasses.replace(filters, **changes)


CHANNEL_USAGE = """
SELECT channel_id, used_quota, request_count FROM channel_usage
WHERE channel_id = ANY($1::bigint[])
"""


async def channel_usage(conn: Connection, *, channel_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Quota and request count served by each channel (kept by a trigger on consume rows)."""
    rows = await conn.fetch(CHANNEL_USAGE, channel_ids)
    return {row["channel_id"]: (row["used_quota"], row["request_count"]) for row in rows}
