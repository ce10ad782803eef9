"""Admin balance changes over real gRPC and PostgreSQL: set_to as a compare-and-set against the
balance the caller saw, and subtractions that may use what leases hold but never go below zero."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import asyncpg
import grpc
import pytest
from veloera.billing.v1 import billing_pb2

from services.shared.errors import error_code_of
from tests.support.accounts_kit import rpc_error
from tests.support.billing_kit import (
    HOLD,
    acquire,
    assert_ledger_consistent,
    fund,
    new_user,
    wallet,
)
from tests.support.infra import Infra

if TYPE_CHECKING:
    from tests.support.billing_kit import Stub

pytestmark = pytest.mark.integration


def set_to(user: int, value: int, expected: int) -> billing_pb2.AdjustQuotaRequest:
    return billing_pb2.AdjustQuotaRequest(
        idempotency_key=f"test-set:{uuid.uuid4()}",
        user_id=user,
        set_to=value,
        expected=expected,
        kind="admin",
    )


def add(user: int, delta: int) -> billing_pb2.AdjustQuotaRequest:
    return billing_pb2.AdjustQuotaRequest(
        idempotency_key=f"test-add:{uuid.uuid4()}", user_id=user, delta=delta, kind="admin"
    )


async def ledger_rows(infra: Infra, idempotency_key: str) -> int:
    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": "billing"})
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM ledger WHERE idempotency_key = $1", idempotency_key
        )
    finally:
        await conn.close()
    return count


async def test_set_to_with_a_stale_expected_balance_changes_nothing(
    billing: Stub, infra: Infra
) -> None:
    user = new_user()
    await fund(billing, user, 10_000)
    seen = (await wallet(billing, user)).quota
    await fund(billing, user, -3_000)  # spent after the admin read the balance
    stale = set_to(user, 50_000, expected=seen)
    error = await rpc_error(billing.AdjustQuota(stale, timeout=10))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_code_of(error) == "balance_changed"
    assert "7000" in (error.details() or "")
    assert (await wallet(billing, user)).quota == 7_000
    assert await ledger_rows(infra, stale.idempotency_key) == 0
    fresh = set_to(user, 50_000, expected=7_000)
    assert (await billing.AdjustQuota(fresh, timeout=10)).quota == 50_000
    assert await ledger_rows(infra, fresh.idempotency_key) == 1
    await assert_ledger_consistent(billing, user)


async def test_expected_compares_the_shown_balance_with_leases_out(billing: Stub) -> None:
    user = new_user()
    await fund(billing, user, 40 * HOLD)
    lease = await acquire(billing, user, requests=10)
    assert lease.granted == 10 * HOLD
    # The wallet row alone holds 30 holds' worth; the user sees 40, and that is the base.
    error = await rpc_error(billing.AdjustQuota(set_to(user, HOLD, 30 * HOLD), timeout=10))
    assert error_code_of(error) == "balance_changed"
    # Refused without writing: the lease is still out and still shown.
    again = await billing.ReturnLease(
        billing_pb2.ReturnLeaseRequest(lease_id=lease.lease_id), timeout=10
    )
    assert not again.already_returned and again.returned == 10 * HOLD
    lease = await acquire(billing, user, requests=10)
    done = await billing.AdjustQuota(set_to(user, HOLD, 40 * HOLD), timeout=10)
    assert done.quota == HOLD
    await assert_ledger_consistent(billing, user)


async def test_expected_goes_with_set_to_only(billing: Stub) -> None:
    user = new_user()
    request = add(user, 100)
    request.expected = 0
    error = await rpc_error(billing.AdjustQuota(request, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_subtracting_uses_leased_quota_but_never_goes_below_zero(billing: Stub) -> None:
    user = new_user()
    await fund(billing, user, 40 * HOLD)
    await acquire(billing, user, requests=10)
    # More than the wallet row holds, less than the user sees: the lease comes back first.
    assert (await billing.AdjustQuota(add(user, -35 * HOLD), timeout=10)).quota == 5 * HOLD
    error = await rpc_error(billing.AdjustQuota(add(user, -6 * HOLD), timeout=10))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_code_of(error) == "insufficient_user_quota"
    assert "below zero" in (error.details() or "")
    assert (await wallet(billing, user)).quota == 5 * HOLD
    await assert_ledger_consistent(billing, user)
