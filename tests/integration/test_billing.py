"""The billing service over real gRPC, PostgreSQL and JetStream: holds, settlement, ledger."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any

import grpc
import nats
import orjson
import pytest
from veloera.billing.v1 import billing_pb2, events_pb2

from services.shared import subjects
from services.shared.errors import error_code_of
from tests.support.accounts_kit import rpc_error
from tests.support.billing_kit import (
    HOLD,
    MODEL,
    assert_ledger_consistent,
    eventually,
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


async def test_parallel_reserves_never_overdraw(billing: Stub) -> None:
    user = new_user()
    await fund(billing, user, 10 * HOLD)
    outcomes = await asyncio.gather(
        *(reserve(billing, user) for _ in range(50)), return_exceptions=True
    )
    placed = [o for o in outcomes if isinstance(o, billing_pb2.ReserveResponse)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(placed) == 10 and len(refused) == 40
    assert all(o.reserved == HOLD for o in placed)
    for error in refused:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_code_of(error) == "insufficient_user_quota"
    after = await wallet(billing, user)
    assert (after.quota, after.held) == (0, 10 * HOLD)
    await assert_ledger_consistent(billing, user)


async def test_settle_twice_charges_once_and_refunds_the_difference(billing: Stub) -> None:
    user, request_id = new_user(), new_request()
    await fund(billing, user, 100_000)
    placed = await reserve(billing, user, request_id)
    assert placed.reserved == HOLD and placed.user_balance_after == 100_000 - HOLD
    first = await settle(billing, request_id, prompt=10, completion=5)
    expected = (10 + 5 * 2) * 15
    assert (first.charged, first.refunded, first.already_settled) == (
        expected,
        HOLD - expected,
        False,
    )
    second = await settle(billing, request_id, prompt=1000, completion=1000)
    assert second.already_settled and second.charged == expected
    after = await wallet(billing, user)
    assert (after.quota, after.used_quota, after.request_count, after.held) == (
        100_000 - expected,
        expected,
        1,
        0,
    )
    repeat = await reserve(billing, user, request_id)
    assert repeat.reserved == HOLD and (await wallet(billing, user)).quota == 100_000 - expected
    await assert_ledger_consistent(billing, user)


async def test_release_refunds_the_whole_hold(billing: Stub) -> None:
    user, request_id = new_user(), new_request()
    await fund(billing, user, 5_000)
    await reserve(billing, user, request_id)
    assert (await wallet(billing, user)).quota == 5_000 - HOLD
    release = billing_pb2.ReleaseRequest(request_id=request_id, reason="upstream failed")
    first = await billing.Release(release, timeout=10)
    second = await billing.Release(release, timeout=10)
    assert (first.released, first.already_released) == (HOLD, False)
    assert second.already_released
    after = await wallet(billing, user)
    assert (after.quota, after.held, after.used_quota) == (5_000, 0, 0)
    error = await rpc_error(settle(billing, request_id, 10, 10))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    await assert_ledger_consistent(billing, user)


async def test_usage_above_the_balance_never_goes_negative(billing: Stub) -> None:
    user, request_id = new_user(), new_request()
    await fund(billing, user, HOLD + 100)
    await reserve(billing, user, request_id)
    result = await settle(billing, request_id, prompt=1000, completion=1000)
    assert result.charged == HOLD + 100  # everything the user had; the rest is uncollected
    assert (await wallet(billing, user)).quota == 0
    logs = await billing.ListLogs(
        billing_pb2.ListLogsRequest(user_id=user, type=billing_pb2.LOG_TYPE_CONSUME), timeout=10
    )
    other = orjson.loads(logs.items[0].other)
    assert other["uncollected"] == (1000 + 2000) * 15 - (HOLD + 100)
    await assert_ledger_consistent(billing, user)


async def test_empty_reply_is_not_billed(billing: Stub) -> None:
    user, request_id = new_user(), new_request()
    await fund(billing, user, 10_000)
    await reserve(billing, user, request_id)
    result = await settle(billing, request_id, prompt=0, completion=0)
    assert (result.charged, result.refunded) == (0, HOLD)
    after = await wallet(billing, user)
    assert (after.quota, after.request_count) == (10_000, 0)
    logs = await billing.ListLogs(billing_pb2.ListLogsRequest(user_id=user), timeout=10)
    consume = [item for item in logs.items if item.type == billing_pb2.LOG_TYPE_CONSUME]
    assert consume[0].quota == 0 and "空回复" in consume[0].content


async def test_token_budget_is_enforced(billing: Stub) -> None:
    user, token_id = new_user(), secrets.randbelow(2**40) + 2**41
    await fund(billing, user, 100_000)
    budget = billing_pb2.SetTokenBudgetRequest(
        token_id=token_id, user_id=user, remain_quota=HOLD + 500
    )
    await billing.SetTokenBudget(budget, timeout=10)
    request_id = new_request()
    await reserve(billing, user, request_id, token_id=token_id)
    error = await rpc_error(reserve(billing, user, token_id=token_id))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_code_of(error) == "token_quota_exhausted"
    await settle(billing, request_id, prompt=10, completion=5)
    budgets = await billing.GetTokenBudgets(
        billing_pb2.GetTokenBudgetsRequest(token_ids=[token_id]), timeout=10
    )
    assert (budgets.budgets[0].remain_quota, budgets.budgets[0].used_quota) == (
        HOLD + 500 - 300,
        300,
    )
    missing = await rpc_error(reserve(billing, user, token_id=token_id + 1))
    assert error_code_of(missing) == "token_quota_exhausted"
    await billing.SetTokenBudget(
        billing_pb2.SetTokenBudgetRequest(token_id=token_id, user_id=user, unlimited=True),
        timeout=10,
    )
    assert (await reserve(billing, user, token_id=token_id)).reserved == HOLD


async def test_unknown_hold_is_not_found(billing: Stub) -> None:
    for call in (
        settle(billing, new_request(), 1, 1),
        billing.Release(billing_pb2.ReleaseRequest(request_id=new_request()), timeout=10),
    ):
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error_code_of(error) == "hold_not_found"


async def test_unpriced_model_is_refused(billing: Stub) -> None:
    user = new_user()
    await fund(billing, user, 10_000)
    error = await rpc_error(reserve(billing, user, model="no-such-model-anywhere"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_code_of(error) == "model_price_error"
    assert (await wallet(billing, user)).quota == 10_000


async def test_adjust_quota_is_idempotent(billing: Stub) -> None:
    user = new_user()
    request = billing_pb2.AdjustQuotaRequest(
        idempotency_key=f"grant:{uuid.uuid4()}", user_id=user, delta=700, kind="grant"
    )
    first = await billing.AdjustQuota(request, timeout=10)
    second = await billing.AdjustQuota(request, timeout=10)
    assert first.quota == second.quota == 700
    set_to = billing_pb2.AdjustQuotaRequest(
        idempotency_key=f"admin:{uuid.uuid4()}", user_id=user, set_to=250, kind="admin"
    )
    assert (await billing.AdjustQuota(set_to, timeout=10)).quota == 250
    overdraw = billing_pb2.AdjustQuotaRequest(
        idempotency_key=f"admin:{uuid.uuid4()}", user_id=user, delta=-251, kind="admin"
    )
    error = await rpc_error(billing.AdjustQuota(overdraw, timeout=10))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await wallet(billing, user)).quota == 250
    await assert_ledger_consistent(billing, user)


async def test_deferred_settlement_applies_exactly_once(billing: Stub, infra: Any) -> None:
    user, request_id = new_user(), new_request()
    await fund(billing, user, 50_000)
    await reserve(billing, user, request_id)
    message = events_pb2.DeferredSettlement(
        settle=billing_pb2.SettleRequest(
            request_id=request_id,
            usage=billing_pb2.Usage(prompt_tokens=40, completion_tokens=30),
            model_name=MODEL,
        ),
        enqueue_time=int(time.time()),
    ).SerializeToString()
    # A release of another hold published after both copies: the single consumer applies the
    # stream in order, so once the marker is applied both copies have been handled (other
    # tests' messages still waiting for redelivery cannot make this wait or pass early).
    marker_user, marker_request = new_user(), new_request()
    await fund(billing, marker_user, 10_000)
    await reserve(billing, marker_user, marker_request)
    marker = events_pb2.DeferredRelease(
        release=billing_pb2.ReleaseRequest(request_id=marker_request, reason="marker"),
        enqueue_time=int(time.time()),
    ).SerializeToString()
    nc = await nats.connect(infra.nats_url)
    try:
        js = nc.jetstream()
        await js.publish(subjects.SETTLEMENTS_SUBJECT, message, timeout=5)
        await js.publish(subjects.SETTLEMENTS_SUBJECT, message, timeout=5)
        await js.publish(subjects.RELEASES_SUBJECT, marker, timeout=5)

        async def marker_applied() -> bool:
            return (await wallet(billing, marker_user)).quota == 10_000

        await eventually(marker_applied, timeout=90)
    finally:
        await nc.close()
    expected = (40 + 30 * 2) * 15
    after = await wallet(billing, user)
    assert (after.quota, after.used_quota, after.request_count) == (
        50_000 - expected,
        expected,
        1,
    )
    logs = await billing.ListLogs(
        billing_pb2.ListLogsRequest(user_id=user, type=billing_pb2.LOG_TYPE_CONSUME), timeout=10
    )
    assert logs.total == 1
    await assert_ledger_consistent(billing, user)


async def test_expired_hold_is_settled_by_the_reaper(billing: Stub) -> None:
    user, request_id = new_user(), new_request()
    await fund(billing, user, 10_000)
    await reserve(billing, user, request_id, ttl_ms=1000)

    async def reaped() -> bool:
        logs = await billing.ListLogs(billing_pb2.ListLogsRequest(user_id=user), timeout=10)
        return any(item.request_id == request_id for item in logs.items)

    await eventually(reaped)
    after = await wallet(billing, user)
    assert (after.quota, after.used_quota, after.held) == (10_000 - HOLD, HOLD, 0)
    error = await rpc_error(settle(billing, request_id, 1, 1))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    await assert_ledger_consistent(billing, user)


async def test_logs_hide_admin_info_from_users(billing: Stub) -> None:
    user, request_id = new_user(), new_request()
    await fund(billing, user, 10_000)
    await reserve(billing, user, request_id)
    await settle(billing, request_id, prompt=10, completion=10)
    user_view = await billing.ListLogs(
        billing_pb2.ListLogsRequest(user_id=user, type=billing_pb2.LOG_TYPE_CONSUME), timeout=10
    )
    admin_view = await billing.ListLogs(
        billing_pb2.ListLogsRequest(
            user_id=user, type=billing_pb2.LOG_TYPE_CONSUME, admin_view=True
        ),
        timeout=10,
    )
    assert "admin_info" not in orjson.loads(user_view.items[0].other)
    assert orjson.loads(admin_view.items[0].other)["admin_info"]["use_channel"] == [7]
    assert user_view.items[0].content.startswith("模型倍率 15，补全倍率 2，分组倍率 1")
    assert user_view.items[0].channel_name == "primary"


async def test_bad_pricing_option_changes_nothing(billing: Stub) -> None:
    before = await billing.GetPricingOptions(billing_pb2.GetPricingOptionsRequest(), timeout=10)
    for key, value in (("ModelRatio", '{"gpt-4o": -1}'), ("QuotaPerUnit", '"many"')):
        error = await rpc_error(
            billing.UpdatePricingOption(
                billing_pb2.UpdatePricingOptionRequest(key=key, value=value), timeout=10
            )
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = await billing.GetPricingOptions(billing_pb2.GetPricingOptionsRequest(), timeout=10)
    assert list(after.options) == list(before.options)
    ratios = {o.key: o.value for o in before.options}["ModelRatio"]
    assert orjson.loads(ratios)["gpt-4o"] == 1.25


async def test_pricing_update_applies_at_once(billing: Stub, saved_pricing: None) -> None:
    options = await billing.GetPricingOptions(billing_pb2.GetPricingOptionsRequest(), timeout=10)
    original = {o.key: o.value for o in options.options}["ModelRatio"]
    model = f"test-model-{uuid.uuid4().hex[:8]}"
    changed = {**orjson.loads(original), model: 3}
    await billing.UpdatePricingOption(
        billing_pb2.UpdatePricingOptionRequest(
            key="ModelRatio", value=orjson.dumps(changed).decode()
        ),
        timeout=10,
    )
    quote = await billing.QuotePrice(
        billing_pb2.QuotePriceRequest(model=model, group="default"), timeout=10
    )
    assert (quote.per_call, quote.model_ratio, quote.quota_per_unit) == (False, 3.0, 500_000)


async def test_ledger_is_consistent_for_every_wallet(billing: Stub) -> None:
    report = await billing.CheckLedger(billing_pb2.CheckLedgerRequest(), timeout=30)
    assert report.consistent, list(report.mismatches)
    assert report.wallets_checked > 0


async def test_subscription_quota_is_spent_and_refunded_first(billing: Stub) -> None:
    user, request_id = new_user(), new_request()
    await fund(billing, user, 10_000)
    await billing.AdjustQuota(
        billing_pb2.AdjustQuotaRequest(
            idempotency_key=f"sub:{uuid.uuid4()}",
            user_id=user,
            delta=1_000,
            kind="grant",
            subscription=True,
        ),
        timeout=10,
    )
    await reserve(billing, user, request_id)  # HOLD 2850: 1000 subscription + 1850 quota
    held = await wallet(billing, user)
    assert (held.subscription_quota, held.quota) == (0, 11_000 - HOLD)
    await settle(billing, request_id, prompt=10, completion=5)  # 300: refund 2550
    after = await wallet(billing, user)
    assert (after.subscription_quota, after.quota) == (1_000, 9_700)
    await assert_ledger_consistent(billing, user)


async def test_concurrent_reserve_and_settle_on_one_token(billing: Stub) -> None:
    user, token_id = new_user(), secrets.randbelow(2**40) + 2**41
    await fund(billing, user, 1_000_000)
    await billing.SetTokenBudget(
        billing_pb2.SetTokenBudgetRequest(token_id=token_id, user_id=user, remain_quota=500_000),
        timeout=10,
    )

    async def one_request() -> int:
        request_id = new_request()
        await reserve(billing, user, request_id, token_id=token_id)
        return (await settle(billing, request_id, prompt=20, completion=10)).charged

    charged = await asyncio.gather(*(one_request() for _ in range(30)))
    assert charged == [(20 + 10 * 2) * 15] * 30
    after = await wallet(billing, user)
    assert (after.quota, after.request_count, after.held) == (1_000_000 - sum(charged), 30, 0)
    budgets = await billing.GetTokenBudgets(
        billing_pb2.GetTokenBudgetsRequest(token_ids=[token_id]), timeout=10
    )
    assert budgets.budgets[0].remain_quota == 500_000 - sum(charged)
    await assert_ledger_consistent(billing, user)
