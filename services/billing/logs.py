"""Consumption and management log rows (reference §2.5, §4.8): insert and filtered listing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.shared.db import Connection

TYPE_TOPUP = 1
TYPE_CONSUME = 2
TYPE_MANAGE = 3
TYPE_SYSTEM = 4
TYPE_CHECK_IN = 5

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


async def list_page(
    conn: Connection, *, filters: LogFilter, page: int, page_size: int
) -> tuple[list[LogRow], int]:
    """One page (1-based), newest first, and the total count matching the filters."""
    size = min(page_size if page_size > 0 else DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    offset = (max(page, 1) - 1) * size
    where, args = _where(filters)
    total: int = await conn.fetchval(f"SELECT count(*) FROM logs{where}", *args)
    n = len(args)
    records = await conn.fetch(
        f"SELECT {_COLUMNS} FROM logs{where} ORDER BY id DESC LIMIT ${n + 1} OFFSET ${n + 2}",
        *args,
        size,
        offset,
    )
    return [_row(record) for record in records], total
