"""Logs at scale over real gRPC: keyset pages, stats, history deletion by partition, hourly
usage rollups, the quota-warning event, and 500 mixed operations keeping the ledger exact."""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc
import nats
import pytest
from veloera.billing.v1 import billing_pb2, events_pb2

from services.shared import subjects
from tests.support.accounts_kit import rpc_error
from tests.support.billing_kit import (
    MODEL,
    assert_ledger_consistent,
    fund,
    new_request,
    new_user,
    reserve,
    settle,
    wallet,
)
from tests.support.clients import BillingClient

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    Stub = BillingClient


async def served(billing: Stub, user: int, prompt: int = 10, completion: int = 10) -> int:
    request_id = new_request()
    await reserve(billing, user, request_id)
    return (await settle(billing, request_id, prompt, completion)).charged


async def test_keyset_pages_walk_every_row_once(billing: Stub) -> None:
    user = new_user()
    await fund(billing, user, 10_000_000)
    for _ in range(7):
        await served(billing, user)
    seen: list[int] = []
    cursor = ""
    while True:
        page = await billing.ListLogs(
            billing_pb2.ListLogsRequest(
                user_id=user,
                type=billing_pb2.LOG_TYPE_CONSUME,
                page_size=3,
                cursor=cursor,
                skip_total=True,
            ),
            timeout=10,
        )
        assert page.total == -1
        seen += [item.id for item in page.items]
        cursor = page.next_cursor
        if not cursor:
            break
    assert len(seen) == 7 and len(set(seen)) == 7
    assert seen == sorted(seen, reverse=True)
    numbered = await billing.ListLogs(
        billing_pb2.ListLogsRequest(
            user_id=user, type=billing_pb2.LOG_TYPE_CONSUME, page=3, page_size=3
        ),
        timeout=10,
    )
    assert numbered.total == 7 and [item.id for item in numbered.items] == seen[6:]
    bad = await rpc_error(billing.ListLogs(billing_pb2.ListLogsRequest(cursor="x'; drop")))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_stat_sums_quota_and_averages_rpm_over_the_window(billing: Stub) -> None:
    user = new_user()
    await fund(billing, user, 10_000_000)
    charged = [await served(billing, user, 100, 50) for _ in range(4)]
    start = int(time.time()) - 120
    query = billing_pb2.ListLogsRequest(user_id=user, start_time=start)
    stat = await billing.GetLogStat(billing_pb2.GetLogStatRequest(query=query), timeout=10)
    assert stat.quota == sum(charged) and stat.count == 4
    assert stat.window_ms >= 120_000
    assert stat.rpm == pytest.approx(4 * 60_000 / stat.window_ms)
    assert stat.tpm == pytest.approx(4 * 150 * 60_000 / stat.window_ms)


async def test_hourly_usage_rollup(billing: Stub) -> None:
    user = new_user()
    await fund(billing, user, 10_000_000)
    charged = [await served(billing, user, 30, 20) for _ in range(3)]
    hour = await billing.GetQuotaData(
        billing_pb2.GetQuotaDataRequest(user_id=user, start_time=int(time.time()) - 7200),
        timeout=10,
    )
    assert len(hour.items) == 1
    point = hour.items[0]
    assert (point.model_name, point.count, point.quota, point.token_used) == (
        MODEL,
        3,
        sum(charged),
        150,
    )
    assert point.created_time % 3600 == 0 and point.username == "tester"
    day = await billing.GetQuotaData(
        billing_pb2.GetQuotaDataRequest(username="tester", granularity="day"), timeout=10
    )
    assert any(p.user_id == user and p.created_time % 86400 == 0 for p in day.items)
    bad = await rpc_error(
        billing.GetQuotaData(billing_pb2.GetQuotaDataRequest(user_id=user, granularity="minute"))
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_history_before_a_date_is_deleted_by_dropping_partitions(
    billing: Stub, infra: Any
) -> None:
    user = new_user()
    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": "billing"})
    try:
        await conn.execute("SELECT ensure_logs_partition('2001-03-10'::timestamptz)")
        await conn.execute(
            "INSERT INTO logs (user_id, type, created_at) SELECT $1, 2, t FROM"
            " generate_series('2001-03-01'::timestamptz, '2001-03-31', '1 day') t",
            user,
        )
        await conn.execute(
            "INSERT INTO logs (user_id, type, created_at) VALUES ($1, 2, '2001-04-02')", user
        )
        bad = await rpc_error(billing.DeleteLogs(billing_pb2.DeleteLogsRequest()))
        assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
        before = int(time.mktime((2001, 4, 5, 0, 0, 0, 0, 0, 0)))
        result = await billing.DeleteLogs(
            billing_pb2.DeleteLogsRequest(before_time=before), timeout=30
        )
        assert result.deleted >= 32 and result.partitions_dropped >= 1
        assert await conn.fetchval("SELECT to_regclass('logs_200103')") is None
        left = await conn.fetchval(
            "SELECT count(*) FROM logs WHERE user_id = $1 AND created_at < '2001-05-01'", user
        )
        assert left == 0
    finally:
        await conn.close()
    fresh = new_user()
    await fund(billing, fresh, 1_000_000)
    await served(billing, fresh)  # current partitions are untouched
    page = await billing.ListLogs(billing_pb2.ListLogsRequest(user_id=fresh), timeout=10)
    assert page.total == 2


async def test_quota_warning_when_the_balance_crosses_the_threshold(
    billing: Stub, infra: Any
) -> None:
    user = new_user()
    await fund(billing, user, 1_200)
    nc = await nats.connect(infra.nats_url)
    received: asyncio.Queue[events_pb2.QuotaWarningEvent] = asyncio.Queue()

    async def on_message(msg: Any) -> None:
        event = events_pb2.QuotaWarningEvent.FromString(msg.data)
        if event.user_id == user:
            await received.put(event)

    subscription = await nc.subscribe(subjects.QUOTA_WARNING_SUBJECT, cb=on_message)
    try:
        request_id = new_request()
        await billing.Reserve(
            billing_pb2.ReserveRequest(
                request_id=request_id,
                user_id=user,
                model=MODEL,
                group="default",
                prompt_tokens=10,
                max_tokens=10,
            ),
            timeout=10,
        )
        charged = (await settle(billing, request_id, 20, 0)).charged  # 300
        event = await asyncio.wait_for(received.get(), timeout=10)
        assert (event.balance, event.threshold) == (1_200 - charged, 1000)
        user = new_user()  # the user's own threshold wins over the option
        await fund(billing, user, 6_000)
        own = new_request()
        await reserve(billing, user, own)
        settled = await billing.Settle(
            billing_pb2.SettleRequest(
                request_id=own,
                usage=billing_pb2.Usage(prompt_tokens=100),
                quota_warning_threshold=5_000,
            ),
            timeout=10,
        )
        event = await asyncio.wait_for(received.get(), timeout=10)
        assert (event.threshold, event.balance) == (5_000, 6_000 - settled.charged)
    finally:
        await subscription.unsubscribe()
        await nc.close()


async def test_500_mixed_operations_keep_the_ledger_exact(billing: Stub) -> None:
    users = [new_user() for _ in range(4)]
    for user in users:
        await fund(billing, user, 60_000)
    keys = await billing.CreateRedemptions(
        billing_pb2.CreateRedemptionsRequest(
            actor_id=1, name="conc", quota=2_000, count=1, is_gift=True, max_uses=3
        ),
        timeout=10,
    )
    gift = keys.keys[0]
    rng = random.Random(4)
    failures: dict[str, int] = {}

    async def one(index: int) -> None:
        user = rng.choice(users)
        kind = rng.choice(["served", "served", "released", "redeem", "check_in", "overdraw"])
        try:
            if kind == "served":
                request_id = new_request()
                await reserve(billing, user, request_id)
                await settle(billing, request_id, rng.randint(0, 400), rng.randint(0, 400))
            elif kind == "released":
                request_id = new_request()
                await reserve(billing, user, request_id)
                await billing.Release(billing_pb2.ReleaseRequest(request_id=request_id), timeout=30)
            elif kind == "redeem":
                await billing.Redeem(billing_pb2.RedeemRequest(key=gift, user_id=user), timeout=30)
            elif kind == "check_in":
                await billing.CheckIn(billing_pb2.CheckInRequest(user_id=user), timeout=30)
            else:
                await billing.Reserve(
                    billing_pb2.ReserveRequest(
                        request_id=new_request(),
                        user_id=user,
                        model=MODEL,
                        group="default",
                        prompt_tokens=10,
                        max_tokens=5_000,
                    ),
                    timeout=30,
                )
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in {
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.StatusCode.FAILED_PRECONDITION,
            }, exc
            failures[kind] = failures.get(kind, 0) + 1

    await billing.UpdatePricingOption(
        billing_pb2.UpdatePricingOptionRequest(key="CheckInEnabled", value="true"), timeout=10
    )
    await asyncio.gather(*(one(i) for i in range(500)))
    await assert_ledger_consistent(billing, *users)
    for user in users:
        state = await wallet(billing, user)
        assert state.quota >= 0 and state.subscription_quota >= 0
    used = await billing.ListRedemptions(
        billing_pb2.ListRedemptionsRequest(keyword="conc", page=1, page_size=100), timeout=10
    )
    assert all(code.used_count <= code.max_uses for code in used.items)


async def test_error_rows_are_written_without_touching_balances(billing: Stub) -> None:
    user = new_user()
    await fund(billing, user, 5_000)
    entry = billing_pb2.LogEntry(
        user_id=user,
        type=billing_pb2.LOG_TYPE_ERROR,
        content="upstream returned 502",
        model_name=MODEL,
        channel_id=3,
        quota=999,  # ignored: error rows never carry a charge
        other='{"admin_info": {"use_channel": [3]}, "status_code": 502}',
    )
    written = await billing.WriteLog(billing_pb2.WriteLogRequest(entry=entry), timeout=10)
    assert written.id > 0 and written.quota == 0
    page = await billing.ListLogs(
        billing_pb2.ListLogsRequest(user_id=user, type=billing_pb2.LOG_TYPE_ERROR), timeout=10
    )
    assert page.total == 1 and page.items[0].content == "upstream returned 502"
    assert "admin_info" not in page.items[0].other
    consume = billing_pb2.LogEntry(user_id=user, type=billing_pb2.LOG_TYPE_CONSUME, quota=5)
    refused = await rpc_error(billing.WriteLog(billing_pb2.WriteLogRequest(entry=consume)))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await wallet(billing, user)).quota == 5_000
