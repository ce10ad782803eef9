"""Monthly partitions of the logs table: created ahead, and dropped whole for old history."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime

import asyncpg

from services.shared.db import Connection

logger = logging.getLogger(__name__)

ENSURE_PARTITION = (
    "SELECT ensure_logs_partition(date_trunc('month', now()) + make_interval(months => $1))"
)
LIST_PARTITIONS = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'logs'::regclass
"""
# Serialises partition maintenance across replicas (DDL on the same parent).
LOCK_MAINTENANCE = "SELECT pg_advisory_xact_lock(hashtextextended('billing.logs.partitions', 0))"
# Deleting logs keeps the hourly rollups (log_hourly) exact: hours wholly before the cut go,
# the hour it cuts through is rebuilt from the rows left. The table lock holds settlement's
# rollup upserts back until the deletion commits (dropping partitions locks the logs anyway).
LOCK_ROLLUPS = "LOCK TABLE log_hourly IN EXCLUSIVE MODE"
DROP_ROLLUPS = "DELETE FROM log_hourly WHERE hour <= date_trunc('hour', $1::timestamptz, 'UTC')"
REBUILD_ROLLUP_HOUR = """
INSERT INTO log_hourly (dim, key, type, hour, count, quota, tokens)
SELECT * FROM log_hourly_between(date_trunc('hour', $1::timestamptz, 'UTC'),
                                 date_trunc('hour', $1::timestamptz, 'UTC') + interval '1 hour')
"""
_MONTHLY = re.compile(r"logs_(\d{4})(\d{2})")


async def ensure_ahead(conn: Connection, *, months: int) -> None:
    """Partitions for this month and the next `months` (idempotent)."""
    async with conn.transaction():
        await conn.execute(LOCK_MAINTENANCE)
        for ahead in range(months + 1):
            await conn.fetchval(ENSURE_PARTITION, ahead)


def _month_end(name: str) -> datetime | None:
    match = _MONTHLY.fullmatch(name)
    if match is None:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


async def delete_before(conn: Connection, *, before: datetime) -> tuple[int, int]:
    """(rows deleted, partitions dropped): whole months before `before` are dropped, the rest
    of the rows older than it deleted; the hourly rollups follow."""
    deleted = 0
    dropped = 0
    async with conn.transaction():
        await conn.execute(LOCK_MAINTENANCE)
        await conn.execute(LOCK_ROLLUPS)
        for record in await conn.fetch(LIST_PARTITIONS):
            name = record["relname"]
            end = _month_end(name)
            if end is None or end > before:
                continue
            deleted += int(await conn.fetchval(f'SELECT count(*) FROM "{name}"'))
            await conn.execute(f'DROP TABLE "{name}"')
            dropped += 1
        status = await conn.execute("DELETE FROM logs WHERE created_at < $1", before)
        deleted += int(status.split()[-1])
        await conn.execute(DROP_ROLLUPS, before)
        await conn.execute(REBUILD_ROLLUP_HOUR, before)
    return deleted, dropped


async def run_maintainer(pool: asyncpg.Pool, *, months: int, interval: float) -> None:
    """Background loop keeping partitions created ahead."""
    while True:
        await asyncio.sleep(interval)
        try:
            async with pool.acquire() as conn:
                await ensure_ahead(conn, months=months)
        except Exception:  # the loop must survive anything; the default partition catches rows
            logger.warning("log partition maintenance failed", exc_info=True)
