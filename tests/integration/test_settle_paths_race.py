"""A leased settlement sent both ways at once (SettleBatch and the JetStream stream) is charged
once: the relay stores a batch billing was slow to answer while the call is still running."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import nats
import pytest
from veloera.billing.v1 import billing_pb2, events_pb2

from services.shared import subjects
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
    settle_batch,
    wallet,
)

if TYPE_CHECKING:
    from tests.support.billing_kit import Stub

pytestmark = pytest.mark.integration

REQUESTS = 20


async def test_a_leased_settlement_racing_through_the_call_and_the_stream_charges_once(
    billing: Stub, infra: Any
) -> None:
    user = new_user()
    await fund(billing, user, 400 * HOLD)
    lease = await acquire(billing, user, requests=REQUESTS)
    items = [leased(lease, new_request()) for _ in range(REQUESTS)]
    nc = await nats.connect(infra.nats_url)
    try:
        js = nc.jetstream()
        now = int(time.time())
        published = [
            js.publish(
                subjects.SETTLEMENTS_SUBJECT,
                events_pb2.DeferredSettlement(settle=item, enqueue_time=now).SerializeToString(),
                timeout=5,
            )
            for item in items
        ]
        whole = events_pb2.DeferredBatch(
            batch=billing_pb2.SettleBatchRequest(settlements=items), batch_id=new_request()
        )
        published.append(
            js.publish(subjects.SETTLE_BATCHES_SUBJECT, whole.SerializeToString(), timeout=5)
        )
        calls = [settle_batch(billing, [item]) for item in items]
        singles = asyncio.gather(*(billing.Settle(item, timeout=10) for item in items))
        others = asyncio.gather(*published, *calls, settle_batch(billing, items))
        answers, _ = await asyncio.gather(singles, others)
        # A single Settle that lost the race is answered like a repeat, never an error.
        assert [answer.charged for answer in answers] == [CHARGE] * REQUESTS

        async def drained() -> bool:
            info = await js.stream_info(subjects.SETTLEMENTS_STREAM)
            return info.state.messages == 0

        await eventually(drained, timeout=60)
    finally:
        await nc.close()
    await settle_batch(billing, [], returns=[lease.lease_id])
    after = await wallet(billing, user)
    assert (after.used_quota, after.request_count) == (REQUESTS * CHARGE, REQUESTS)
    assert after.quota == 400 * HOLD - REQUESTS * CHARGE
    await assert_ledger_consistent(billing, user)
