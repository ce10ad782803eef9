"""The log of what was metered, as the console reads it: pages, stats, per-channel and hourly
usage; free rows (errors, system notes) and deleting old history."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from services.billing.context import Billing
from services.billing.store import logs, partitions, usage_data
from services.billing.store.logs import LogFilter, LogRow
from services.billing.store.usage_data import UsagePoint
from services.shared.errors import InvalidArgument


async def page(
    billing: Billing, *, filters: LogFilter, page: int, page_size: int, cursor: str, total: bool
) -> logs.Page:
    async with billing.pool.acquire() as conn:
        return await logs.list_page(
            conn,
            filters=filters,
            page=page,
            page_size=page_size,
            cursor=cursor,
            count_total=total,
        )


async def stat(billing: Billing, filters: LogFilter) -> logs.Stat:
    async with billing.pool.acquire() as conn:
        return await logs.stat(conn, filters=filters, now=time.time())


async def channel_usage(billing: Billing, channel_ids: list[int]) -> dict[int, tuple[int, int]]:
    """channel id -> (quota used, requests)."""
    async with billing.pool.acquire() as conn:
        return await logs.channel_usage(conn, channel_ids=channel_ids)


async def write(billing: Billing, row: LogRow) -> LogRow:
    """Store a free row (one that goes with no balance change); the row with its id."""
    async with billing.pool.acquire() as conn:
        row.id = await logs.insert(conn, row=row)
    row.created_at = datetime.now(UTC)
    return row


async def delete_before(billing: Billing, before_timestamp: int) -> tuple[int, int]:
    """(rows deleted, monthly partitions dropped) older than the unix time."""
    if before_timestamp <= 0:
        raise InvalidArgument("before_timestamp must be a positive unix time")
    before = datetime.fromtimestamp(before_timestamp, tz=UTC)
    async with billing.pool.acquire() as conn:
        return await partitions.delete_before(conn, before=before)


async def quota_data(
    billing: Billing, *, user_id: int, username: str, start: int, end: int, granularity: str
) -> list[UsagePoint]:
    async with billing.pool.acquire() as conn:
        return await usage_data.query(
            conn,
            user_id=user_id,
            username=username,
            start=start,
            end=end,
            granularity=granularity,
        )
