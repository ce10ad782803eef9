"""Run a background job in exactly one replica at a time, never in none.

Every replica runs `run_in_one_replica`; each holds a dedicated PostgreSQL connection (not a
pool's: the lock belongs to the session) and asks `pg_try_advisory_lock` for the job's lock.
The one that gets it runs the job for as long as it holds the connection; the others ask again
every `retry` seconds. A replica that dies or loses its database connection loses the lock with
its session, so another replica takes over within `retry` seconds; the holder checks its
connection every `retry` seconds too and stops the job as soon as it cannot reach the database
(its lock may be gone), so two replicas overlap at most that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
PING_TIMEOUT = 5.0
DEFAULT_RETRY = 5.0
_DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

Job = Callable[[], Coroutine[Any, Any, None]]


def lock_id(name: str) -> int:
    """The job's advisory lock: a stable signed 64-bit number derived from its name."""
    digest = hashlib.sha256(f"veloera-singleton:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def every(interval: float, job: Job, *, name: str) -> Job:
    """A job body that runs `job` every `interval` seconds, the first run one interval after
    it starts (as upstream's tickers); a failed run is logged and the next one happens on
    time."""

    async def loop() -> None:
        await asyncio.sleep(interval)
        while True:
            try:
                await job()
            except Exception:  # the loop must outlive any one run
                logger.warning("%s failed", name, exc_info=True)
            await asyncio.sleep(interval)

    return loop


async def run_in_one_replica(
    database_url: str, name: str, job: Job, *, retry: float = DEFAULT_RETRY
) -> None:
    """Run `job` (a long-running coroutine) while this replica holds the job's lock; runs until
    cancelled."""
    key = lock_id(name)
    while True:
        try:
            conn = await asyncpg.connect(
                database_url,
                timeout=CONNECT_TIMEOUT,
                server_settings={"application_name": f"veloera-singleton-{name}"[:63]},
            )
        except _DB_ERRORS:
            logger.warning("%s: cannot reach the database; retrying", name)
            await asyncio.sleep(retry)
            continue
        try:
            await _contend(conn, key, name, job, retry)
        except _DB_ERRORS:
            logger.warning("%s: lost the database connection; contending again", name)
        finally:
            with contextlib.suppress(*_DB_ERRORS):
                await asyncio.wait_for(conn.close(), timeout=PING_TIMEOUT)
        await asyncio.sleep(retry)


async def _contend(conn: asyncpg.Connection, key: int, name: str, job: Job, retry: float) -> None:
    """Wait for the lock on `conn`, then run the job until the connection fails."""
    while True:
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key, timeout=PING_TIMEOUT):
            break
        await asyncio.sleep(retry)  # another replica holds it: ask again later
    logger.info("%s: this replica runs it now", name)
    running: asyncio.Task[None] = asyncio.create_task(job(), name=name)
    try:
        while not running.done():
            await asyncio.wait({running}, timeout=retry)
            if not running.done():
                await conn.fetchval("SELECT 1", timeout=PING_TIMEOUT)  # still holding it
        error = running.exception()  # the job ended by itself: log why, then contend again
        logger.warning("%s ended; contending again", name, exc_info=error)
    finally:
        if not running.done():
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running
        with contextlib.suppress(*_DB_ERRORS):
            await conn.execute("SELECT pg_advisory_unlock($1)", key, timeout=PING_TIMEOUT)
