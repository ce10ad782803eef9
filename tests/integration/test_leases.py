"""Quota leases over real gRPC and PostgreSQL: no overdraft across holders, exactly-once
settlement against a lease, unspent money back on return or expiry, the ledger consistent."""

from __future__ import annotations

import asyncio
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
    CHARGE,
    HOLD,
    acquire,
    assert_ledger_consistent,
    eventually,
    fund,
    leased,
    new_request,
    new_user,
    reserve,
    settle,
    settle_batch,
    wallet,
)
from tests.support.infra import Infra

if TYPE_CHECKING:
    from tests.support.billing_kit import Stub

pytestmark = pytest.mark.integration


async def test_leases_never_grant_more_than_the_wallet_across_holders(billing: Stub) -> None:
    user = new_user()
    await fund(billing, user, 25 * HOLD)
    outcomes = await asyncio.gather(
        *(acquire(billing, user, holder=f"relay-{n}", requests=10) for n in range(30)),
        return_exceptions=True,
    )
    assert not [o for o in outcomes if isinstance(o, BaseException)]
    replies = [o for o in outcomes if isinstance(o, billing_pb2.Lease)]
    leases = [lease for lease in replies if not lease.per_request]
    granted = sum(lease.granted for lease in leases)
    assert granted <= 25 * HOLD and all(lease.granted >= HOLD for lease in leases)
    # The first lease granted takes a quarter of the balance, the next ones less and less; once
    # a quarter of what is left covers no hold, the holder is told to Reserve per request
    # (which can use the rest exactly) instead of being refused.
    assert max(lease.granted for lease in leases) == 25 * HOLD // 4
    assert any(lease.per_request for lease in replies)
    # What is leased out is still the user's: the balance they see does not move.
    assert (await wallet(billing, user)).quota == 25 * HOLD
    await assert_ledger_consistent(billing, user)
    for lease in leases:
        await billing.ReturnLease(
            billing_pb2.ReturnLeaseRequest(lease_id=lease.lease_id), timeout=10
        )
    assert (await wallet(billing, user)).quota == 25 * HOLD
    await assert_ledger_consistent(billing, user)


async def test_leased_requests_settle_once_and_the_rest_comes_back(billing: Stub) -> None:
    user = new_user()
    await fund(billing, user, 40 * HOLD)
    lease_a = await acquire(billing, user, holder="relay-a", requests=5)
    lease_b = await acquire(billing, user, holder="relay-b", requests=5)
    ids_a = [new_request() for _ in range(4)]
    ids_b = [new_request() for _ in range(3)]
    items = [leased(lease_a, i) for i in ids_a] + [leased(lease_b, i) for i in ids_b]
    # Two batches carrying the same items at once, then the first again: each charged once.
    replies = await asyncio.gather(settle_batch(billing, items), settle_batch(billing, items[::-1]))
    again = await settle_batch(billing, items)
    for reply in (*replies, again):
        assert [r.settled.charged for r in reply.settlements] == [CHARGE] * 7
    fresh = sum(not r.settled.already_settled for reply in replies for r in reply.settlements)
    assert fresh == 7 and all(r.settled.already_settled for r in again.settlements)
    during = await wallet(billing, user)
    # The balance shown is the wallet plus what the leases still hold: only charges count.
    assert during.quota == 40 * HOLD - 7 * CHARGE
    assert during.used_quota == 7 * CHARGE and during.request_count == 7
    await settle_batch(billing, [], returns=[lease_a.lease_id, lease_b.lease_id])
    after = await wallet(billing, user)
    assert after.quota == 40 * HOLD - 7 * CHARGE
    await assert_ledger_consistent(billing, user)
    logs = await billing.ListLogs(
        billing_pb2.ListLogsRequest(user_id=user, page_size=50), timeout=10
    )
    assert sorted(e.quota for e in logs.items if e.type == 2) == [CHARGE] * 7


async def test_an_expired_lease_is_returned_by_the_reaper(billing: Stub, infra: Infra) -> None:
    user = new_user()
    await fund(billing, user, 40 * HOLD)
    lease = await acquire(billing, user, requests=10, ttl_seconds=1, hold_seconds=0)
    assert lease.granted == 10 * HOLD
    await settle_batch(billing, [leased(lease, new_request())])
    assert (await wallet(billing, user)).quota == 40 * HOLD - CHARGE
    conn = await asyncpg.connect(infra.database_url)

    async def returned() -> bool:
        status = await conn.fetchval(
            "SELECT status FROM billing.leases WHERE lease_id = $1", lease.lease_id
        )
        return bool(status == "returned")

    try:
        await eventually(returned)
    finally:
        await conn.close()
    assert (await wallet(billing, user)).quota == 40 * HOLD - CHARGE
    again = await billing.ReturnLease(
        billing_pb2.ReturnLeaseRequest(lease_id=lease.lease_id), timeout=10
    )
    assert again.already_returned and again.returned == 10 * HOLD - HOLD
    # A late settlement against the returned lease is charged to the wallet directly, once.
    late = new_request()
    reply = await settle_batch(billing, [leased(lease, late), leased(lease, late)])
    assert [r.settled.charged for r in reply.settlements] == [CHARGE, CHARGE]
    assert (await wallet(billing, user)).quota == 40 * HOLD - 2 * CHARGE
    await assert_ledger_consistent(billing, user)


async def test_a_lease_carves_the_token_budget_and_gives_it_back(billing: Stub) -> None:
    user, token_id = new_user(), new_user()
    await fund(billing, user, 100 * HOLD)
    await billing.SetTokenBudget(
        billing_pb2.SetTokenBudgetRequest(token_id=token_id, user_id=user, remain_quota=3 * HOLD),
        timeout=10,
    )
    lease = await acquire(billing, user, requests=10, token_id=token_id)
    assert lease.granted == 3 * HOLD  # capped by the token's budget
    error = await rpc_error(acquire(billing, user, token_id=token_id))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await settle_batch(billing, [leased(lease, new_request())], returns=[lease.lease_id])
    budgets = await billing.GetTokenBudgets(
        billing_pb2.GetTokenBudgetsRequest(token_ids=[token_id]), timeout=10
    )
    assert budgets.budgets[0].remain_quota == 3 * HOLD - CHARGE
    assert budgets.budgets[0].used_quota == CHARGE
    assert (await wallet(billing, user)).quota == 100 * HOLD - CHARGE
    await assert_ledger_consistent(billing, user)


async def test_a_deferred_leased_settlement_is_applied_once_by_the_consumer(
    billing: Stub, infra: Any
) -> None:
    user = new_user()
    await fund(billing, user, 40 * HOLD)
    lease = await acquire(billing, user, requests=4)
    request_id = new_request()
    message = events_pb2.DeferredSettlement(
        settle=leased(lease, request_id), enqueue_time=int(time.time())
    ).SerializeToString()
    nc = await nats.connect(infra.nats_url)
    try:
        js = nc.jetstream()
        await js.publish(subjects.SETTLEMENTS_SUBJECT, message, timeout=5)
        await js.publish(subjects.SETTLEMENTS_SUBJECT, message, timeout=5)

        async def applied() -> bool:
            return (await wallet(billing, user)).used_quota == CHARGE

        await eventually(applied, timeout=90)
        await asyncio.sleep(1.0)  # a second application would show by now
    finally:
        await nc.close()
    await settle_batch(billing, [], returns=[lease.lease_id])
    after = await wallet(billing, user)
    assert (after.quota, after.used_quota, after.request_count) == (40 * HOLD - CHARGE, CHARGE, 1)
    await assert_ledger_consistent(billing, user)


async def test_setting_a_balance_sets_what_the_user_sees_with_leases_out(billing: Stub) -> None:
    user = new_user()
    await fund(billing, user, 40 * HOLD)
    lease = await acquire(billing, user, requests=10)
    assert lease.granted == 10 * HOLD
    change = billing_pb2.AdjustQuotaRequest(
        idempotency_key=f"test-set:{new_request()}",
        user_id=user,
        set_to=20 * HOLD,
        kind="admin",
        reason="set by the admin",
    )
    assert (await billing.AdjustQuota(change, timeout=10)).quota == 20 * HOLD
    assert (await wallet(billing, user)).quota == 20 * HOLD
    # Setting the balance took the lease back: returning it again gives nothing more.
    again = await billing.ReturnLease(
        billing_pb2.ReturnLeaseRequest(lease_id=lease.lease_id), timeout=10
    )
    assert again.already_returned
    assert (await wallet(billing, user)).quota == 20 * HOLD
    # A request the relay still served from that lease is charged to the wallet, once.
    late = leased(lease, new_request())
    await settle_batch(billing, [late, late])
    assert (await wallet(billing, user)).quota == 20 * HOLD - CHARGE
    await assert_ledger_consistent(billing, user)
    logs = await billing.ListLogs(
        billing_pb2.ListLogsRequest(user_id=user, page_size=50), timeout=10
    )
    assert any(f"{40 * HOLD}" in e.content and f"{20 * HOLD}" in e.content for e in logs.items)


async def test_usage_above_a_per_request_hold_takes_the_users_lease_before_writing_off(
    billing: Stub,
) -> None:
    """A small balance can have a lease and per-request holds at once: when the wallet is empty,
    usage above a per-request hold comes from the lease's free part, not written off."""
    user = new_user()
    await fund(billing, user, 40 * HOLD)
    lease = await acquire(billing, user, requests=10)
    assert lease.granted == 10 * HOLD
    held = [new_request() for _ in range(30)]
    for request_id in held:
        await reserve(billing, user, request_id)  # the wallet is now at zero
    above = (100 + 2 * 100) * 15  # more than one hold, less than the lease's free part
    result = await settle(billing, held[0], prompt=100, completion=100)
    assert result.charged == above
    logs = await billing.ListLogs(
        billing_pb2.ListLogsRequest(user_id=user, type=billing_pb2.LOG_TYPE_CONSUME), timeout=10
    )
    assert "uncollected" not in logs.items[0].other
    for request_id in held[1:]:
        await billing.Release(
            billing_pb2.ReleaseRequest(request_id=request_id, reason="not served"), timeout=10
        )
    await settle_batch(billing, [], returns=[lease.lease_id])
    assert (await wallet(billing, user)).quota == 40 * HOLD - above
    await assert_ledger_consistent(billing, user)
