"""Import benchmark (issue 18), run separately: `python -m bench.import_logs [--rows N]`.

Builds a new-api SQLite database with N log rows (default 1 million) over 1,000 users with a
key each and 20 channels, spread over 90 days, starts its own embedded PostgreSQL (or uses
`--dsn`), applies the migrations and runs `veloera import` into it with the progress bars on.
Prints the seconds each table took and the log rows per second. The target is under 2 minutes
for one million rows.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sqlite3
import tempfile
import time
from pathlib import Path

from rich.progress import Progress

from services.cli.infra import EmbeddedPostgres, free_port, new_secret
from services.cli.migrate import run_migrations
from services.importer.report import Bars, progress_bars, render
from services.importer.run import ImportSettings, run_import

USERS = 1000
CHANNELS = 20
DAYS = 90

SCHEMA = """
CREATE TABLE users (id integer PRIMARY KEY, username text, password text, role integer,
    status integer, quota integer, used_quota integer, request_count integer, "group" text,
    aff_code text, access_token text, setting text, deleted_at datetime);
CREATE TABLE tokens (id integer PRIMARY KEY, user_id integer, "key" text, name text,
    status integer, created_time integer, expired_time integer, remain_quota integer,
    unlimited_quota numeric, deleted_at datetime);
CREATE TABLE channels (id integer PRIMARY KEY, type integer, "key" text, name text,
    status integer, models text, "group" text, base_url text, tag text);
CREATE TABLE logs (id integer PRIMARY KEY, user_id integer, created_at integer, type integer,
    content text, username text, token_name text, model_name text, quota integer,
    prompt_tokens integer, completion_tokens integer, use_time integer, is_stream numeric,
    channel_id integer, token_id integer, "group" text, other text, ip text);
"""
LOGS = """
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?)
INSERT INTO logs SELECT n, n % ? + 1, ? - (? - n) * ? / ?, 2, 'model ratio 1, group ratio 1',
    'user' || (n % ? + 1), 'key', 'model-' || (n % 50), n % 5000 + 1, n % 3000 + 1,
    n % 800 + 1, n % 30, n % 2, n % ? + 1, n % ? + 1, 'default',
    '{"model_ratio":1,"group_ratio":1}', '' FROM g
"""


def build_source(path: Path, rows: int) -> float:
    started = time.perf_counter()
    now = int(time.time())
    conn = sqlite3.connect(path)
    try:
        conn.executescript(SCHEMA)
        conn.executemany(
            "INSERT INTO users VALUES (?, ?, '', 1, 1, 1000000, 5, 1, 'default', ?, NULL, '',"
            " NULL)",
            [(i, f"user{i}", secrets.token_hex(3)) for i in range(1, USERS + 1)],
        )
        conn.executemany(
            "INSERT INTO tokens VALUES (?, ?, ?, 'key', 1, 0, -1, 0, 1, NULL)",
            [(i, i, secrets.token_hex(24)) for i in range(1, USERS + 1)],
        )
        conn.executemany(
            "INSERT INTO channels VALUES (?, 1, ?, ?, 1, 'model-1', 'default', '', '')",
            [(i, secrets.token_hex(8), f"ch{i}") for i in range(1, CHANNELS + 1)],
        )
        conn.execute(LOGS, (rows, USERS, now, rows, DAYS * 86400, rows, USERS, CHANNELS, USERS))
        conn.commit()
    finally:
        conn.close()
    return time.perf_counter() - started


class Timed(Bars):
    """The progress bars, plus when each table started and finished."""

    def __init__(self, progress: Progress) -> None:
        super().__init__(progress)
        self.started: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def begin(self, table: str, total: int) -> None:
        self.started[table] = self.last[table] = time.perf_counter()
        super().begin(table, total)

    def advance(self, table: str, count: int) -> None:
        self.last[table] = time.perf_counter()
        super().advance(table, count)


async def bench(
    rows: int, dsn: str | None, work: Path, log_batch_size: int, log_writers: int
) -> None:
    source = work / "new-api.db"
    print(f"building a new-api SQLite database with {rows:,} log rows ...", flush=True)
    print(f"  built in {build_source(source, rows):.1f} s", flush=True)
    pg = None
    if dsn is None:
        pg = EmbeddedPostgres(work / "postgres", free_port(), new_secret())
        await asyncio.to_thread(pg.start)
        dsn = pg.dsn
    try:
        await run_migrations(dsn)
        options = ImportSettings(
            source=str(source),
            database_url=dsn,
            crypto_secret=secrets.token_urlsafe(32),
            log_batch_size=log_batch_size,
            log_writers=log_writers,
        )
        started = time.perf_counter()
        with progress_bars() as progress:
            timed = Timed(progress)
            report = await run_import(options, bars=timed)
        total = time.perf_counter() - started
        render(report, progress.console)
        logs_seconds = timed.last["logs"] - timed.started["logs"]
        imported = report.tables["logs"].imported
        print(
            f"\nlogs: {imported:,} rows in {logs_seconds:.1f} s"
            f" ({imported / logs_seconds:,.0f} rows/s); whole import {total:.1f} s",
            flush=True,
        )
    finally:
        if pg is not None:
            await asyncio.to_thread(pg.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dsn", help="an existing, migrated-or-empty database to import into")
    parser.add_argument("--log-batch-size", type=int, default=20_000, help="log rows per COPY")
    parser.add_argument("--log-writers", type=int, default=2, help="connections copying logs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="veloera-import-bench-") as work:
        asyncio.run(bench(args.rows, args.dsn, Path(work), args.log_batch_size, args.log_writers))


if __name__ == "__main__":
    main()
