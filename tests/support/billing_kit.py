"""Billing over gRPC: users with funded wallets, holds, settlement, the ledger check."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from veloera.billing.v1 import billing_pb2

from tests.support.clients import BillingClient

if TYPE_CHECKING:
    Stub = BillingClient


# gpt-4: model ratio 15, completion ratio 2 (locked family rule), group "default" ratio 1.
MODEL = "gpt-4"


HOLD = (10 + 90 * 2) * 15  # prompt 10 + max_tokens 90 x completion ratio 2, x model ratio 15


def new_user() -> int:
    return secrets.randbelow(2**40) + 2**41


def new_request() -> str:
    return f"req-{uuid.uuid4().hex}"


async def fund(billing: Stub, user_id: int, amount: int) -> None:
    await billing.AdjustQuota(
        billing_pb2.AdjustQuotaRequest(
            idempotency_key=f"test-fund:{uuid.uuid4()}",
            user_id=user_id,
            delta=amount,
            kind="grant",
            reason="test funds",
        ),
        timeout=10,
    )


async def reserve(
    billing: Stub, user_id: int, request_id: str | None = None, token_id: int = 0, **kw: Any
) -> billing_pb2.ReserveResponse:

    request = billing_pb2.ReserveRequest(
        request_id=request_id or new_request(),
        user_id=user_id,
        token_id=token_id,
        model=kw.pop("model", MODEL),
        group="default",
        prompt_tokens=10,
        max_tokens=90,
        **kw,
    )
    return await billing.Reserve(request, timeout=10)


async def settle(
    billing: Stub, request_id: str, prompt: int, completion: int
) -> billing_pb2.SettleResponse:
    request = billing_pb2.SettleRequest(
        request_id=request_id,
        usage=billing_pb2.Usage(prompt_tokens=prompt, completion_tokens=completion),
        username="tester",
        token_name="key",
        model_name=MODEL,
        channel_id=7,
        channel_name="primary",
        channels_tried=[7],
        elapsed_ms=1200,
    )
    return await billing.Settle(request, timeout=10)


async def wallet(billing: Stub, user_id: int) -> billing_pb2.Wallet:
    return await billing.GetWallet(billing_pb2.GetWalletRequest(user_id=user_id), timeout=10)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


async def assert_ledger_consistent(billing: Stub, *user_ids: int) -> None:
    report = await billing.CheckLedger(
        billing_pb2.CheckLedgerRequest(user_ids=list(user_ids)), timeout=30
    )
    assert report.consistent, list(report.mismatches)
    assert report.wallets_checked == len(user_ids)


CHARGE = (10 + 2 * 20) * 15  # prompt 10, completion 20 (completion ratio 2), model ratio 15


async def acquire(
    billing: Stub,
    user: int,
    *,
    holder: str = "relay-a",
    requests: int = 10,
    ttl_seconds: int = 60,
    hold_seconds: int = 60,
    token_id: int = 0,
) -> billing_pb2.Lease:
    request = billing_pb2.AcquireLeaseRequest(
        holder=holder,
        user_id=user,
        model=MODEL,
        group="default",
        prompt_tokens=10,
        max_tokens=90,
        requests=requests,
        ttl_ms=ttl_seconds * 1000,
        hold_ms=hold_seconds * 1000,
        token_id=token_id,
    )
    return await billing.AcquireLease(request, timeout=10)


def leased(
    lease: billing_pb2.Lease, request_id: str, completion: int = 20
) -> billing_pb2.SettleRequest:
    return billing_pb2.SettleRequest(
        request_id=request_id,
        usage=billing_pb2.Usage(prompt_tokens=10, completion_tokens=completion),
        model_name=MODEL,
        lease_id=lease.lease_id,
        lease_reserved=lease.first_hold,
    )


async def settle_batch(
    billing: Stub, items: list[billing_pb2.SettleRequest], returns: list[str] | None = None
) -> billing_pb2.SettleBatchResponse:
    request = billing_pb2.SettleBatchRequest(settlements=items, return_leases=returns or [])
    return await billing.SettleBatch(request, timeout=30)
