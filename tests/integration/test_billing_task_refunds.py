"""Refunds of failed async tasks reach billing through the settlement stream: the user and the
key's budget get the task's quota back once per submit, however often it is published; a refund
that can never apply is dropped (terminated), not retried forever."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import nats
import pytest
from veloera.billing.v1 import billing_pb2
from veloera.tasks.v1 import tasks_pb2

from services.shared import subjects
from tests.support.billing_kit import (
    assert_ledger_consistent,
    eventually,
    fund,
    new_request,
    new_user,
    wallet,
)
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    from tests.support.billing_kit import Stub


async def test_a_task_refund_published_twice_credits_user_and_key_once(
    billing: Stub, infra: Infra
) -> None:
    user, token_id = new_user(), secrets.randbelow(2**40) + 2**41
    await fund(billing, user, 1_000)
    await billing.SetTokenBudget(
        billing_pb2.SetTokenBudgetRequest(token_id=token_id, user_id=user, remain_quota=200),
        timeout=10,
    )
    refund = tasks_pb2.TaskRefund(
        request_id=new_request(),
        user_id=user,
        token_id=token_id,
        quota=300,
        platform=tasks_pb2.PLATFORM_MIDJOURNEY,
        upstream_task_id="mj-123",
        reason="banned prompt",
        model_name="mj_imagine",
    ).SerializeToString()
    poison = tasks_pb2.TaskRefund(request_id=new_request(), user_id=user, quota=0)
    # A marker after them: the single consumer applies the stream in order.
    marker_user = new_user()
    marker = tasks_pb2.TaskRefund(request_id=new_request(), user_id=marker_user, quota=5)
    nc = await nats.connect(infra.nats_url)
    try:
        js = nc.jetstream()
        for payload in (refund, poison.SerializeToString(), refund, marker.SerializeToString()):
            await js.publish(subjects.TASK_REFUNDS_SUBJECT, payload, timeout=5)

        async def marker_applied() -> bool:
            return (await wallet(billing, marker_user)).quota == 5

        await eventually(marker_applied, timeout=60)
    finally:
        await nc.close()
    assert (await wallet(billing, user)).quota == 1_300
    budgets = await billing.GetTokenBudgets(
        billing_pb2.GetTokenBudgetsRequest(token_ids=[token_id]), timeout=10
    )
    assert budgets.budgets[0].remain_quota == 500
    logs = await billing.ListLogs(
        billing_pb2.ListLogsRequest(user_id=user, type=billing_pb2.LOG_TYPE_SYSTEM), timeout=10
    )
    [row] = [item for item in logs.items if "补偿" in item.content]
    assert row.quota == 300 and "mj-123" in row.content and "banned prompt" in row.content
    await assert_ledger_consistent(billing, user)
