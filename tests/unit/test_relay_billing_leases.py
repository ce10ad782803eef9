"""The relay's lease book: local holds against a lease, one AcquireLease for many requests,
released holds back into the lease, retired leases returned once their last request is done."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from veloera.billing.v1 import billing_pb2

from services.relay.billing.leases import LeaseBook, LeaseConfig, lease_config
from services.shared.config import Env

PRICE = billing_pb2.Price(
    model_ratio=1.0, group_ratio=1.0, completion_ratio=1.0, quota_per_unit=500_000
)
HOLD = 10 + 90  # prompt 10 + max_tokens 90, ratio 1


class FakeBilling:
    def __init__(self, *, granted: int, per_request: bool = False) -> None:
        self.granted = granted
        self.per_request = per_request
        self.calls: list[billing_pb2.AcquireLeaseRequest] = []

    async def AcquireLease(self, request: billing_pb2.AcquireLeaseRequest, timeout: float) -> Any:
        self.calls.append(request)
        await asyncio.sleep(0.01)
        if self.per_request:
            return billing_pb2.Lease(per_request=True)
        return billing_pb2.Lease(
            lease_id=f"lease-{len(self.calls)}",
            granted=self.granted,
            price=PRICE,
            first_hold=HOLD,
            expire_time=1,
        )


def book(billing: FakeBilling, returned: list[str], ttl: int = 30) -> LeaseBook:
    return LeaseBook(
        billing,  # type: ignore[arg-type]
        give_back=returned.append,
        config=LeaseConfig(requests=4, ttl_seconds=ttl, hold_seconds=0),
    )


async def hold(leases: LeaseBook, request_id: str) -> bool:
    covered = await leases.reserve(
        request_id=request_id,
        user_id=1,
        token_id=2,
        model="m",
        group="default",
        requested_model="",
        prompt_tokens=10,
        max_tokens=90,
    )
    assert covered in (None, 90)
    return covered is not None


async def test_concurrent_requests_share_one_lease_until_it_runs_short() -> None:
    billing = FakeBilling(granted=3 * HOLD)
    returned: list[str] = []
    leases = book(billing, returned)
    results = await asyncio.gather(*(hold(leases, f"r{n}") for n in range(3)))
    assert results == [True, True, True]
    assert billing.calls[0].requests == 6  # the three waiting for it, twice over
    assert await hold(leases, "r3")  # the first lease is full: a second one, the first retired
    assert len(billing.calls) == 2 and returned == []  # retired, but 3 requests still in flight
    for n in range(3):
        settle = billing_pb2.SettleRequest(request_id=f"r{n}")
        leases.settled(settle)
        assert settle.lease_id == "lease-1" and settle.lease_reserved == HOLD
    assert returned == ["lease-1"]  # returned once its last request settled


async def test_a_released_hold_goes_back_into_the_lease() -> None:
    billing = FakeBilling(granted=2 * HOLD)
    returned: list[str] = []
    leases = book(billing, returned)
    assert await hold(leases, "a") and await hold(leases, "b")
    assert leases.released("a")
    assert await hold(leases, "c") and len(billing.calls) == 1
    assert not leases.released("unknown")
    leases.retire_all()
    leases.released("b")
    assert returned == []
    leases.settled(billing_pb2.SettleRequest(request_id="c"))
    assert returned == ["lease-1"]


async def test_per_request_answer_falls_back_to_reserve() -> None:
    billing = FakeBilling(granted=0, per_request=True)
    returned: list[str] = []
    leases = book(billing, returned)
    assert not await hold(leases, "a")
    assert not await hold(leases, "b")
    assert len(billing.calls) == 1  # remembered for the lease ttl


def test_leases_are_on_unless_turned_off() -> None:
    assert lease_config(Env({"BILLING_LEASES": "false"})) is None
    default = lease_config(Env({}))
    assert default is not None and default.requests == 64
    config = lease_config(Env({"BILLING_LEASES": "true", "BILLING_LEASE_REQUESTS": "8"}))
    assert config is not None and config.requests == 8


async def test_a_successor_is_acquired_in_the_background_before_the_lease_runs_out() -> None:
    billing = FakeBilling(granted=8 * HOLD)
    returned: list[str] = []
    leases = book(billing, returned)
    for n in range(7):  # the 7th leaves 1/8: below a quarter
        assert await hold(leases, f"r{n}")
    assert len(billing.calls) == 1
    await asyncio.sleep(0.05)  # the refill's AcquireLease answers
    assert len(billing.calls) == 2
    assert billing.calls[1].requests > 4  # sized by the rate seen, not the configured minimum
    assert await hold(leases, "next")
    settle = billing_pb2.SettleRequest(request_id="next")
    leases.settled(settle)
    assert settle.lease_id == "lease-2" and settle.lease_reserved == HOLD
    assert returned == []  # the predecessor still has 7 requests in flight
    for n in range(7):
        leases.settled(billing_pb2.SettleRequest(request_id=f"r{n}"))
    assert returned == ["lease-1"]


class FailingRefill(FakeBilling):
    async def AcquireLease(self, request: billing_pb2.AcquireLeaseRequest, timeout: float) -> Any:
        if self.calls:
            self.calls.append(request)
            raise RuntimeError("billing unavailable")
        return await super().AcquireLease(request, timeout)


async def test_a_failed_refill_leaves_requests_on_the_current_lease_then_fails_them() -> None:
    billing = FailingRefill(granted=4 * HOLD)
    returned: list[str] = []
    leases = book(billing, returned)
    for n in range(4):
        assert await hold(leases, f"r{n}")
    await asyncio.sleep(0.05)
    assert len(billing.calls) == 2  # the background refill failed quietly
    with pytest.raises(RuntimeError, match="billing unavailable"):
        await hold(leases, "r4")  # the lease is used up: the error reaches this request
    assert len(billing.calls) == 3


class SizedGrants(FakeBilling):
    """Grants what was asked for: `requests` holds."""

    async def AcquireLease(self, request: billing_pb2.AcquireLeaseRequest, timeout: float) -> Any:
        self.granted = request.requests * HOLD
        return await super().AcquireLease(request, timeout)


async def test_a_burst_of_new_requests_waits_for_one_acquire_sized_for_it() -> None:
    billing = SizedGrants(granted=0)
    leases = book(billing, [])  # leases of at least 4 holds
    results = await asyncio.gather(*(hold(leases, f"r{n}") for n in range(100)))
    assert all(results)
    # One AcquireLease for the whole burst, sized for all of it.
    assert len(billing.calls) == 1 and billing.calls[0].requests == 200


async def test_no_quota_reaches_every_waiting_request_and_nothing_is_held() -> None:
    class NoQuota(FakeBilling):
        async def AcquireLease(
            self, request: billing_pb2.AcquireLeaseRequest, timeout: float
        ) -> Any:
            self.calls.append(request)
            await asyncio.sleep(0.01)
            raise RuntimeError("user quota is not enough")

    billing = NoQuota(granted=0)
    leases = book(billing, [])
    outcomes = await asyncio.gather(
        *(hold(leases, f"r{n}") for n in range(5)), return_exceptions=True
    )
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert len(billing.calls) == 1  # one call answered all five
    assert not leases.released("r0")  # nothing was held locally
