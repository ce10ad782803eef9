"""Log totals and stats read from the hourly rollups (log_hourly) match a plain query over the
logs for every console filter combination, numbered-page totals are exact or honestly capped,
deletion keeps the rollups exact, and the logs' triggers work under any search_path."""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from veloera.billing.v1 import billing_pb2

from services.billing.store.logs import COUNT_CAP
from tests.support.clients import BillingClient
from tests.support.helpers import root_console

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    Stub = BillingClient

# A month of its own, so other tests' rows never fall in the ranges checked here.
BASE = datetime(2003, 5, 10, tzinfo=UTC)
HOUR = 3600


async def _connect(infra: Any, search_path: str = "billing") -> asyncpg.Connection:
    return await asyncpg.connect(infra.database_url, server_settings={"search_path": search_path})


async def _seed(conn: asyncpg.Connection) -> dict[str, list[Any]]:
    """~400 rows of several types over three days at minute offsets that cut hours apart;
    the names are unique to this run so a filter on them sees only these rows."""
    tag = uuid.uuid4().hex[:8]
    users = [random.randint(10**12, 10**13) for _ in range(3)]
    values: dict[str, list[Any]] = {
        "user_id": users,
        "username": [f"u{tag}-{i}" for i in range(3)],
        "token_name": [f"k{tag}-{i}" for i in range(4)],
        "model_name": [f"m{tag}-{i}" for i in range(3)],
        "channel_id": [random.randint(10**12, 10**13) for _ in range(3)],
        "group": [f"g{tag}-{i}" for i in range(2)],
    }
    rng = random.Random(tag)
    rows = []
    for _ in range(400):
        who = rng.randrange(3)
        rows.append(
            (
                users[who],
                rng.choice([2, 2, 2, 2, 1, 3, 6]),
                BASE + timedelta(seconds=rng.randrange(3 * 86400)),
                values["username"][who],
                rng.choice(values["token_name"]),
                rng.choice(values["model_name"]),
                rng.randrange(1, 5000),
                rng.randrange(0, 900),
                rng.randrange(0, 900),
                rng.choice(values["channel_id"]),
                rng.choice(values["group"]),
            )
        )
    await conn.execute("SELECT ensure_logs_partition($1)", BASE)
    # Several statements, as settlement batches arrive: the trigger adds into existing hours.
    for chunk in range(0, len(rows), 90):
        await conn.executemany(
            "INSERT INTO logs (user_id, type, created_at, username, token_name, model_name,"
            ' quota, prompt_tokens, completion_tokens, channel_id, "group")'
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            rows[chunk : chunk + 90],
        )
    return values


async def _plain(conn: asyncpg.Connection, request: billing_pb2.ListLogsRequest) -> asyncpg.Record:
    """Count, quota, tokens and first row of the matching rows by a plain query."""
    clauses, args = [], []
    for column, value in (
        ("user_id", request.user_id),
        ("type", request.type),
        ("username", request.username),
        ("token_name", request.token_name),
        ("model_name", request.model_name),
        ("channel_id", request.channel_id),
        ('"group"', request.group),
    ):
        if value:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if request.start_time:
        args.append(request.start_time)
        clauses.append(f"created_at >= to_timestamp(${len(args)})")
    if request.end_time:
        args.append(request.end_time)
        clauses.append(f"created_at <= to_timestamp(${len(args)})")
    where = " AND ".join(clauses) or "true"
    record = await conn.fetchrow(
        "SELECT count(*) AS n, COALESCE(sum(quota), 0) AS quota,"
        " COALESCE(sum(prompt_tokens + completion_tokens), 0) AS tokens,"
        f" extract(epoch FROM min(created_at)) AS first_at FROM logs WHERE {where}",
        *args,
    )
    assert record is not None
    return record


def _ranges() -> list[tuple[int, int]]:
    start = int(BASE.timestamp())
    return [
        (0, 0),  # open
        (start + 7 * HOUR + 1234, start + 50 * HOUR + 17),  # partial hours at both edges
        (start + 5 * HOUR, start + 30 * HOUR),  # on hour boundaries (end is inclusive)
        (start + 9 * HOUR + 60, start + 9 * HOUR + 2000),  # inside one hour
        (start + 40 * HOUR + 5, 0),  # open end
        (0, start + 20 * HOUR + 999),  # open start
    ]


async def test_totals_and_stats_match_a_plain_query_for_every_filter(
    billing: Stub, infra: Any
) -> None:
    conn = await _connect(infra)
    try:
        values = await _seed(conn)
        dims = list(values)
        checked = 0
        for size in (1, 2):
            for chosen in itertools.combinations(dims, size):
                for log_type, (start, end) in itertools.product([0, 2, 6], _ranges()):
                    fields = {dim: random.choice(values[dim]) for dim in chosen}
                    request = billing_pb2.ListLogsRequest(
                        type=log_type,  # type: ignore[arg-type]
                        start_time=start,
                        end_time=end,
                        page_size=5,
                        **fields,
                    )
                    await _check(billing, conn, request)
                    checked += 1
        # No dimension: the whole table, also over ranges outside this test's month.
        for log_type, (start, end) in itertools.product([0, 2], _ranges()[1:4]):
            request = billing_pb2.ListLogsRequest(
                type=log_type,  # type: ignore[arg-type]
                start_time=start,
                end_time=end,
            )
            await _check(billing, conn, request)
            checked += 1
        assert checked == 21 * 3 * 6 + 6
    finally:
        await conn.close()


async def _check(billing: Stub, conn: asyncpg.Connection, request: Any) -> None:
    page = await billing.ListLogs(request, timeout=10)
    stat = await billing.GetLogStat(billing_pb2.GetLogStatRequest(query=request), timeout=10)
    listed = await _plain(conn, request)
    assert (page.total, page.total_capped) == (listed["n"], False), request
    assert len(page.items) == min(listed["n"], request.page_size or 10)
    consume = billing_pb2.ListLogsRequest()
    consume.CopyFrom(request)
    if not consume.type:
        consume.type = billing_pb2.LOG_TYPE_CONSUME
    expected = await _plain(conn, consume)
    assert (stat.count, stat.quota) == (expected["n"], expected["quota"]), request
    if request.end_time:
        start = request.start_time or expected["first_at"] or request.end_time
        window = max(int(request.end_time - float(start)), 60)
        assert stat.window_ms == window * 1000, request
        assert stat.tpm == pytest.approx(int(expected["tokens"]) * 60 / window), request


async def test_a_total_beyond_the_cap_is_reported_as_capped(billing: Stub, infra: Any) -> None:
    conn = await _connect(infra)
    user = random.randint(10**12, 10**13)
    try:
        await conn.execute("SELECT ensure_logs_partition($1)", BASE)
        await conn.execute(
            "INSERT INTO logs (user_id, type, created_at, model_name, quota) SELECT $1, 2,"
            " $2::timestamptz + make_interval(secs => g), 'capped-model', 1"
            " FROM generate_series(1, $3) g",
            user,
            BASE,
            COUNT_CAP + 50,
        )
        one = await billing.ListLogs(billing_pb2.ListLogsRequest(user_id=user), timeout=10)
        assert (one.total, one.total_capped) == (COUNT_CAP + 50, False)
        both = await billing.ListLogs(
            billing_pb2.ListLogsRequest(user_id=user, model_name="capped-model"), timeout=10
        )
        assert (both.total, both.total_capped) == (COUNT_CAP, True)
        few = await billing.ListLogs(
            billing_pb2.ListLogsRequest(
                user_id=user,
                model_name="capped-model",
                start_time=int(BASE.timestamp()) + 1,
                end_time=int(BASE.timestamp()) + 30,
            ),
            timeout=10,
        )
        assert (few.total, few.total_capped) == (30, False)
        query = billing_pb2.ListLogsRequest(user_id=user, model_name="capped-model")
        stat = await billing.GetLogStat(billing_pb2.GetLogStatRequest(query=query), timeout=10)
        assert (stat.count, stat.quota) == (COUNT_CAP + 50, COUNT_CAP + 50)
    finally:
        await conn.close()


async def test_deleting_history_keeps_the_rollups_exact(billing: Stub, infra: Any) -> None:
    conn = await _connect(infra)
    user = random.randint(10**12, 10**13)
    day = datetime(2002, 6, 10, tzinfo=UTC)
    try:
        await conn.execute("SELECT ensure_logs_partition($1)", day)
        await conn.execute(
            "INSERT INTO logs (user_id, type, created_at, quota, prompt_tokens) SELECT $1, 2,"
            " $2::timestamptz + make_interval(mins => g * 7), g, 1 FROM generate_series(0, 400) g",
            user,
            day,
        )
        cut = int((day + timedelta(hours=12, minutes=30)).timestamp())  # mid-hour
        await billing.DeleteLogs(billing_pb2.DeleteLogsRequest(before_time=cut), timeout=30)
        for request in (
            billing_pb2.ListLogsRequest(user_id=user),
            billing_pb2.ListLogsRequest(user_id=user, start_time=cut - 600),
            billing_pb2.ListLogsRequest(),
        ):
            await _check(billing, conn, request)
        stale = await conn.fetchval(
            "SELECT count(*) FROM log_hourly"
            " WHERE hour < date_trunc('hour', to_timestamp($1), 'UTC')",
            cut,
        )
        assert stale == 0
    finally:
        await conn.close()


async def test_log_triggers_work_under_another_search_path(billing: Stub, infra: Any) -> None:
    conn = await _connect(infra, search_path="public")
    user = random.randint(10**12, 10**13)
    channel = random.randint(10**12, 10**13)
    try:
        await conn.execute(
            "INSERT INTO billing.logs (user_id, type, channel_id, quota) VALUES ($1, 2, $2, 7)",
            user,
            channel,
        )
    finally:
        await conn.close()
    used = await billing.GetChannelUsage(
        billing_pb2.GetChannelUsageRequest(channel_ids=[channel]), timeout=10
    )
    assert [(u.used_quota, u.request_count) for u in used.usage] == [(7, 1)]
    query = billing_pb2.ListLogsRequest(user_id=user)
    stat = await billing.GetLogStat(billing_pb2.GetLogStatRequest(query=query), timeout=10)
    assert (stat.count, stat.quota) == (1, 7)


async def test_console_log_pages_show_exact_or_capped_totals(web_url: str) -> None:
    root = await root_console(web_url)
    try:
        page = await root.call("GET", "/api/log/", params={"p": 1, "page_size": 5, "type": 2})
        assert page["total_capped"] is False and page["total"] >= len(page["items"])
        both = await root.call(
            "GET", "/api/log/", params={"type": 2, "model_name": "capped-model", "username": "x"}
        )
        assert (both["total"], both["total_capped"], both["items"]) == (0, False, [])
        stat = await root.call("GET", "/api/log/stat", params={"model_name": "capped-model"})
        assert stat["count"] >= 0 and stat["quota"] >= 0
        bad = await root.client.get(
            "/api/log/stat",
            params={"start_timestamp": str(10**15)},
            headers={"Veloera-User": str(root.user_id)},
        )
        assert bad.status_code == 400 and bad.json()["success"] is False, bad.text
    finally:
        await root.aclose()
