"""Log-query benchmark (issues 4 and 19), run separately: `python -m bench.logs_bench [--rows N]`.

Starts its own embedded PostgreSQL (or uses `--dsn`), applies the migrations, generates N
consume-log rows (default 10 million) spread over 90 days with `generate_series` in SQL (the
logs' triggers keep the hourly rollups as settlement's inserts do), then times the console's
queries through the billing service's own code (`services.billing.store.logs`): a filtered first
page, the next page by cursor, page 50, the first page with its total, and the stats (quota sum,
RPM, TPM) over the same filter. With `--http` it starts the whole system instead and times the
same requests through the web service's `/api/log/` and `/api/log/stat` as root. Prints the
median of 5 warm runs of each, in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg

from bench.stack import FakeProcess, Stack
from services.billing.store import logs
from services.billing.store.logs import LogFilter
from services.cli.infra import EmbeddedPostgres, free_port, new_secret
from services.cli.migrate import run_migrations
from tests.support.helpers import root_console

DAYS = 90
USERS = 1000
MODELS = 50
CHUNK = 1_000_000

GENERATE = """
INSERT INTO logs (user_id, created_at, type, content, username, token_name, model_name, quota,
                  prompt_tokens, completion_tokens, use_time, is_stream, channel_id, token_id,
                  "group", other, request_id)
SELECT u, at, 2, '模型倍率 1，补全倍率 1，分组倍率 1', 'user' || u,
       'key' || (u * 4 + abs(hashint8(g * 5)) % 4), 'model-' || (abs(hashint8(g * 3)) % $4),
       (g % 5000) + 1, (g % 3000) + 1, (g % 800) + 1, g % 30, g % 2 = 0,
       (g % 20) + 1, u * 4 + g % 4, (ARRAY['default', 'vip', 'svip'])[g % 3 + 1],
       '{"model_ratio": 1, "group_ratio": 1}'::jsonb, 'req-' || g
FROM (
    SELECT g, (abs(hashint8(g)) % $3) + 1 AS u,
           $5::timestamptz - make_interval(secs => (g::double precision * $6 / $2)) AS at
    FROM generate_series($1::bigint, $1::bigint + $7 - 1) AS g
) s
"""


async def generate(conn: asyncpg.Connection, rows: int) -> float:
    started = time.perf_counter()
    now = await conn.fetchval("SELECT now()")
    done = 0
    while done < rows:
        size = min(CHUNK, rows - done)
        await conn.execute(GENERATE, done, rows, USERS, MODELS, now, DAYS * 86400.0, size)
        done += size
        print(f"  generated {done:,} rows ({time.perf_counter() - started:.0f} s)", flush=True)
    await conn.execute("VACUUM ANALYZE logs")
    return time.perf_counter() - started


async def timed(run: Callable[[], Awaitable[Any]], repeats: int = 5) -> tuple[float, Any]:
    samples: list[float] = []
    result: Any = None
    await run()  # warm the cache once: the console hits warm pages
    for _ in range(repeats):
        started = time.perf_counter()
        result = await run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), result


def scenarios(now: int) -> list[tuple[str, LogFilter]]:
    day, week = now - 86400, now - 7 * 86400
    return [
        ("user, last 7 days", LogFilter(user_id=42, start_timestamp=week)),
        (
            "user + model, last 7 days",
            LogFilter(user_id=42, model_name="model-7", start_timestamp=week),
        ),
        ("user, all 90 days", LogFilter(user_id=42)),
        ("admin: everything, newest first", LogFilter()),
        ("admin: type consume, last 24 h", LogFilter(type=2, start_timestamp=day)),
        ("admin: username, last 7 days", LogFilter(username="user77", start_timestamp=week)),
        ("admin: token name, last 7 days", LogFilter(token_name="key400", start_timestamp=week)),
        ("admin: model, last 24 h", LogFilter(model_name="model-3", start_timestamp=day)),
        ("admin: channel, last 24 h", LogFilter(channel_id=5, start_timestamp=day)),
        ("admin: group vip, last 24 h", LogFilter(group="vip", start_timestamp=day)),
        ("admin: type consume, all days", LogFilter(type=2)),
        ("admin: type consume, last 7 days", LogFilter(type=2, start_timestamp=week)),
        ("admin: model, all days", LogFilter(model_name="model-7")),
        ("admin: group vip, all days", LogFilter(group="vip")),
        ("admin: channel, all days", LogFilter(channel_id=5)),
        ("admin: model + group, all days", LogFilter(model_name="model-7", group="vip")),
        (
            "admin: consume + channel + group, 7 d",
            LogFilter(type=2, channel_id=5, group="vip", start_timestamp=week),
        ),
        ("admin: token + model, all days", LogFilter(token_name="key400", model_name="model-3")),
        (
            "admin: model + channel + group, all days",
            LogFilter(model_name="model-7", channel_id=5, group="vip"),
        ),
    ]


async def measure(conn: asyncpg.Connection) -> None:
    now = int(time.time())
    print(
        f"{'filter':40} {'page1':>7} {'cursor2':>7} {'p=50':>7} {'p1+total':>9} {'stat':>7}  rows"
    )
    for name, filters in scenarios(now):
        first = partial(logs.list_page, conn, filters=filters, page=1, page_size=20)
        page_ms, page = await timed(partial(first, count_total=False))
        cursor_ms, _ = await timed(partial(first, cursor=page.next_cursor, count_total=False))
        deep_ms, _ = await timed(
            partial(logs.list_page, conn, filters=filters, page=50, page_size=20, count_total=False)
        )
        total_ms, numbered = await timed(first)
        stat_ms, stat = await timed(partial(logs.stat, conn, filters=filters, now=time.time()))
        capped = "+" if getattr(numbered, "total_capped", False) else ""
        print(
            f"{name:40} {page_ms:7.1f} {cursor_ms:7.1f} {deep_ms:7.1f} {total_ms:9.1f}"
            f" {stat_ms:7.1f}  {numbered.total:,}{capped} (quota {stat.quota:,},"
            f" rpm {stat.rpm:.3f})",
            flush=True,
        )


def _params(filters: LogFilter) -> dict[str, str]:
    """The console's query string for these filters (the admin page filters users by name)."""
    params = {
        "type": filters.type,
        "username": f"user{filters.user_id}" if filters.user_id else filters.username,
        "token_name": filters.token_name,
        "model_name": filters.model_name,
        "channel": filters.channel_id,
        "group": filters.group,
        "start_timestamp": filters.start_timestamp,
    }
    return {name: str(value) for name, value in params.items() if value}


async def measure_http(web_url: str) -> None:
    now = int(time.time())
    root = await root_console(web_url)
    try:
        print(
            f"{'filter (HTTP)':40} {'page1':>7} {'cursor2':>7} {'p=50':>7} {'p1+total':>9}"
            f" {'stat':>7}  rows"
        )
        for name, filters in scenarios(now):
            query = {**_params(filters), "page_size": "20"}
            call = partial(root.call, "GET", "/api/log/")
            page_ms, page = await timed(
                partial(call, params={**query, "p": "1", "skip_total": "1"})
            )
            after = {**query, "cursor": page["next_cursor"], "skip_total": "1"}
            cursor_ms, _ = await timed(partial(call, params=after))
            deep_ms, _ = await timed(partial(call, params={**query, "p": "50", "skip_total": "1"}))
            total_ms, numbered = await timed(partial(call, params={**query, "p": "1"}))
            stat_ms, stat = await timed(partial(root.call, "GET", "/api/log/stat", params=query))
            capped = "+" if numbered.get("total_capped") else ""
            print(
                f"{name:40} {page_ms:7.1f} {cursor_ms:7.1f} {deep_ms:7.1f} {total_ms:9.1f}"
                f" {stat_ms:7.1f}  {numbered['total']:,}{capped} (quota {stat['quota']:,},"
                f" rpm {stat['rpm']:.3f})",
                flush=True,
            )
    finally:
        await root.aclose()


async def run_http(dsn: str, rows: int, skip_generate: bool) -> None:
    """The whole system on `dsn` (or a fresh database) with `rows` log rows; timed through
    HTTP."""
    # ~600 calls in a few minutes: above the per-address API rate limit, which is not measured.
    no_limit = {"GLOBAL_API_RATE_LIMIT_ENABLE": "false"}
    stack = Stack(
        fake=FakeProcess(port=0, args=[]), log_level="WARNING", dsn=dsn, extra_env=no_limit
    )
    try:
        await stack.start()
        await fill(stack.dsn, rows, skip_generate)
        await measure_http(stack.web_url)
    finally:
        stack.stop()
        shutil.rmtree(stack.work_dir, ignore_errors=True)


async def fill(dsn: str, rows: int, skip_generate: bool) -> None:
    """Partitions for the 90 days and `rows` generated log rows (less those already there)."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "billing"})
    try:
        await conn.execute(
            "SELECT ensure_logs_partition(now() - make_interval(months => m))"
            " FROM generate_series(0, 4) m"
        )
        existing = await conn.fetchval("SELECT count(*) FROM logs")
        if not skip_generate and existing < rows:
            print(f"generating {rows - existing:,} rows over {DAYS} days ...", flush=True)
            seconds = await generate(conn, rows - existing)
            print(f"generated in {seconds:.0f} s", flush=True)
        total = await conn.fetchval("SELECT count(*) FROM logs")
        size = await conn.fetchval(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits"
            " WHERE inhparent = 'logs'::regclass"
        )
        print(f"logs: {total:,} rows, {size} with indexes; median of 5 warm runs, ms")
    finally:
        await conn.close()


async def run(dsn: str, rows: int, skip_generate: bool) -> None:
    await run_migrations(dsn)
    await fill(dsn, rows, skip_generate)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "billing"})
    try:
        await measure(conn)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dsn", default="", help="use this database instead of a fresh one")
    parser.add_argument("--skip-generate", action="store_true")
    parser.add_argument("--http", action="store_true", help="time through the web service")
    args = parser.parse_args()
    if args.http:
        asyncio.run(run_http(args.dsn, args.rows, args.skip_generate))
        return
    if args.dsn:
        asyncio.run(run(args.dsn, args.rows, args.skip_generate))
        return
    with tempfile.TemporaryDirectory(prefix="veloera-logs-bench-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "postgres", free_port(), new_secret())
        pg.start()
        try:
            asyncio.run(run(pg.dsn, args.rows, args.skip_generate))
        finally:
            pg.stop()


if __name__ == "__main__":
    main()
