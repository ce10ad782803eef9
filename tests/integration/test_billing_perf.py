"""SettleBatch over real gRPC and PostgreSQL: many settlements and releases per call, each
applied exactly once, one item's error never failing the others, the ledger consistent."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc
import pytest
from veloera.billing.v1 import billing_pb2

from tests.support.billing_kit import (
    HOLD,
    MODEL,
    assert_ledger_consistent,
    fund,
    new_request,
    new_user,
    reserve,
    wallet,
)

if TYPE_CHECKING:
    from tests.support.billing_kit import Stub

pytestmark = pytest.mark.integration


CHARGE = (10 + 2 * 20) * 15  # prompt 10, completion 20 (completion ratio 2), model ratio 15


def settle_item(
    request_id: str, prompt: int = 10, completion: int = 20
) -> billing_pb2.SettleRequest:
    return billing_pb2.SettleRequest(
        request_id=request_id,
        usage=billing_pb2.Usage(prompt_tokens=prompt, completion_tokens=completion),
        username="tester",
        model_name=MODEL,
        channel_id=7,
        elapsed_ms=100,
    )


async def settle_batch(
    billing: Stub,
    settlements: list[billing_pb2.SettleRequest],
    releases: list[billing_pb2.ReleaseRequest] | None = None,
) -> billing_pb2.SettleBatchResponse:
    request = billing_pb2.SettleBatchRequest(settlements=settlements, releases=releases or [])
    return await billing.SettleBatch(request, timeout=30)


async def test_batch_settles_each_item_once_and_refunds_the_rest(billing: Stub) -> None:
    user = new_user()
    await fund(billing, user, 20 * HOLD)
    ids = [new_request() for _ in range(10)]
    for request_id in ids:
        await reserve(billing, user, request_id)
    reply = await settle_batch(billing, [settle_item(i) for i in ids])
    assert [r.settled.charged for r in reply.settlements] == [CHARGE] * 10
    assert [r.settled.refunded for r in reply.settlements] == [HOLD - CHARGE] * 10
    assert not any(r.HasField("error") for r in reply.settlements)
    after = await wallet(billing, user)
    assert after.quota == 20 * HOLD - 10 * CHARGE
    assert after.used_quota == 10 * CHARGE and after.request_count == 10
    assert after.held == 0
    # The same batch again (a retried call) charges nothing more.
    again = await settle_batch(billing, [settle_item(i) for i in ids])
    assert all(r.settled.already_settled for r in again.settlements)
    assert (await wallet(billing, user)).quota == after.quota
    await assert_ledger_consistent(billing, user)


async def test_bad_items_answer_their_own_error_and_the_rest_apply(billing: Stub) -> None:
    user = new_user()
    await fund(billing, user, 10 * HOLD)
    good, released, to_release = new_request(), new_request(), new_request()
    for request_id in (good, released, to_release):
        await reserve(billing, user, request_id)
    await billing.Release(billing_pb2.ReleaseRequest(request_id=released), timeout=10)
    bad_kind = settle_item(new_request())
    bad_kind.usage.kind = "no-such-kind"
    reply = await settle_batch(
        billing,
        [
            settle_item("req-unknown-" + new_request()),
            settle_item(released),
            bad_kind,
            settle_item(good),
            settle_item(good),
        ],
        [
            billing_pb2.ReleaseRequest(request_id=to_release, reason="client left"),
            billing_pb2.ReleaseRequest(request_id="req-unknown-" + new_request()),
        ],
    )
    unknown, was_released, invalid, first, repeated = reply.settlements
    assert unknown.error.code == "hold_not_found"
    assert unknown.error.grpc_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert was_released.error.code == "hold_released"
    assert invalid.error.grpc_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert first.settled.charged == CHARGE and not first.settled.already_settled
    assert repeated.settled.already_settled and repeated.settled.charged == CHARGE
    release_ok, release_unknown = reply.releases
    assert release_ok.released.released == HOLD
    assert release_unknown.error.code == "hold_not_found"
    after = await wallet(billing, user)
    assert after.quota == 10 * HOLD - CHARGE and after.held == 0
    await assert_ledger_consistent(billing, user)


async def test_concurrent_batches_over_shared_users_never_deadlock_or_double_charge(
    billing: Stub,
) -> None:
    users = [new_user() for _ in range(4)]
    for user in users:
        await fund(billing, user, 40 * HOLD)
    ids = [(users[n % 4], new_request()) for n in range(80)]
    await asyncio.gather(*(reserve(billing, user, rid) for user, rid in ids))
    # Four batches in opposite orders, each item also present in another batch.
    items = [rid for _, rid in ids]
    batches = [items[:40], items[40:], list(reversed(items[20:60])), list(reversed(items))]
    replies = await asyncio.gather(
        *(settle_batch(billing, [settle_item(i) for i in b]) for b in batches)
    )
    for reply in replies:
        assert all(r.settled.charged == CHARGE for r in reply.settlements)
    fresh = sum(not r.settled.already_settled for reply in replies for r in reply.settlements)
    assert fresh == 80
    for user in users:
        after = await wallet(billing, user)
        assert after.quota == 40 * HOLD - 20 * CHARGE and after.request_count == 20
    await assert_ledger_consistent(billing, *users)


async def _scenario(billing: Stub, *, batched: bool) -> dict[str, object]:
    """The same mix of settlements, applied one by one or as one batch; what a user sees."""
    user, token_id = new_user(), new_user()
    await fund(billing, user, 5 * HOLD + 2_000)
    await billing.AdjustQuota(
        billing_pb2.AdjustQuotaRequest(
            idempotency_key=f"test-sub:{new_request()}",
            user_id=user,
            delta=HOLD // 2,
            kind="grant",
            subscription=True,
        ),
        timeout=10,
    )
    await billing.SetTokenBudget(
        billing_pb2.SetTokenBudgetRequest(token_id=token_id, user_id=user, remain_quota=5 * HOLD),
        timeout=10,
    )
    usages = [(10, 20), (10, 500), (0, 0), (10, 20), (10, 5000)]  # refund, above, empty, ...
    ids = [new_request() for _ in usages]
    for request_id in ids:
        await reserve(billing, user, request_id, token_id=token_id)
    items = [settle_item(i, p, c) for i, (p, c) in zip(ids, usages, strict=True)]
    if batched:
        reply = await settle_batch(billing, items)
        results = [(r.settled.charged, r.settled.refunded) for r in reply.settlements]
    else:
        results = []
        for item in items:
            single = await billing.Settle(item, timeout=10)
            results.append((single.charged, single.refunded))
    after = await wallet(billing, user)
    [budget] = (
        await billing.GetTokenBudgets(
            billing_pb2.GetTokenBudgetsRequest(token_ids=[token_id]), timeout=10
        )
    ).budgets
    page = await billing.ListLogs(
        billing_pb2.ListLogsRequest(user_id=user, page_size=20, admin_view=True), timeout=10
    )
    log_rows = sorted(
        (e.quota, e.content, e.prompt_tokens, e.completion_tokens, e.other) for e in page.items
    )
    usage = await billing.GetQuotaData(billing_pb2.GetQuotaDataRequest(user_id=user), timeout=10)
    await assert_ledger_consistent(billing, user)
    return {
        "results": results,
        "wallet": (after.quota, after.subscription_quota, after.used_quota, after.request_count),
        "held": after.held,
        "budget": (budget.remain_quota, budget.used_quota),
        "logs": log_rows,
        "rollup": sorted((p.model_name, p.token_used, p.count, p.quota) for p in usage.items),
    }


async def test_a_batch_charges_exactly_what_single_settlements_charge(billing: Stub) -> None:
    single = await _scenario(billing, batched=False)
    batched = await _scenario(billing, batched=True)
    assert batched == single
    assert single["held"] == 0
    # The mix really covers a charge above the hold and an uncollected rest.
    charges = [charged for charged, _ in single["results"]]  # type: ignore[attr-defined]
    assert max(charges) > HOLD and any('"uncollected"' in row[4] for row in single["logs"])  # type: ignore[attr-defined]


async def test_reserves_and_batches_of_the_same_users_interleave_without_overdraft(
    billing: Stub,
) -> None:
    users = [new_user() for _ in range(3)]
    for user in users:
        await fund(billing, user, 30 * HOLD)
    first = [(users[n % 3], new_request()) for n in range(30)]
    await asyncio.gather(*(reserve(billing, user, rid) for user, rid in first))
    second = [(users[n % 3], new_request()) for n in range(60)]  # more than the rest can hold
    items = [settle_item(rid) for _, rid in first]
    outcomes = await asyncio.gather(
        settle_batch(billing, items[:15]),
        *(reserve(billing, user, rid) for user, rid in second),
        settle_batch(billing, list(reversed(items[15:]))),
        return_exceptions=True,
    )
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(
        isinstance(f, grpc.aio.AioRpcError) and f.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for f in failures
    ), failures
    placed = 60 - len(failures)
    for user in users:
        after = await wallet(billing, user)
        assert after.quota >= 0 and after.request_count == 10
    total_held = sum([(await wallet(billing, u)).held for u in users])
    assert total_held == placed * HOLD
    await assert_ledger_consistent(billing, *users)
