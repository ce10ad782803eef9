"""End to end: served requests stay charged, once, whatever dies: the relay (killed or stopped)
under load, billing (paused) with the relay killed meanwhile, NATS restarted mid-load."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import asyncpg
import pytest

from services.cli.supervisor import Child
from services.relay.billing.biller import BATCH_SIZE, DURABLE_WITHIN
from tests.support.fault_kit import (
    Load,
    all_ready,
    assert_books_balance,
    paused,
    restore,
    served_at_least,
    settled_rows,
    steady_load,
    wait_stored,
)
from tests.support.infra import Infra
from tests.support.relay_kit import world as world
from tests.support.world import Customer, World, eventually, new_customer, wallet

pytestmark = pytest.mark.e2e

QUOTA = 100_000_000
LOAD_SECONDS = 2.0
# How long the relay gets to store the settlements once NATS is back (reconnect, publish
# backoff) before it is killed; far below the SettleBatch timeout billing never answers.
NATS_BACK_WITHIN = 3.0


async def _kill(child: Child, sig: int) -> None:
    assert child.proc is not None
    child.proc.send_signal(sig)
    await asyncio.to_thread(child.proc.wait)


async def _signalled_under_load(
    world: World, relay: Child, sig: int
) -> tuple[Customer, dict[str, Any], Load]:
    """A new customer's steady load, the relay sent `sig` in the middle of it, then restored;
    with the wallet before."""
    customer = await new_customer(world, quota=QUOTA)
    before = await wallet(customer)
    try:
        async with steady_load(world, customer) as load:
            await asyncio.sleep(LOAD_SECONDS)
            await _kill(relay, sig)
    finally:
        await restore(relay)
    assert load.served
    return customer, before, load


async def test_a_relay_killed_under_load_loses_at_most_the_durability_window(
    world: World, relay_service: Child, billing_addr: str, infra: Infra
) -> None:
    customer, before, load = await _signalled_under_load(world, relay_service, signal.SIGKILL)
    rows = await settled_rows(infra, customer, load.served, all_of_them=False)
    unpaid = set(load.served) - {r["request_id"] for r in rows}
    assert len(unpaid) <= load.rate * DURABLE_WITHIN + BATCH_SIZE, (len(unpaid), load.rate)
    await assert_books_balance(customer, before, rows, billing_addr)


async def test_a_relay_stopped_under_load_settles_every_served_request(
    world: World, relay_service: Child, billing_addr: str, infra: Infra
) -> None:
    customer, before, load = await _signalled_under_load(world, relay_service, signal.SIGTERM)
    rows = await settled_rows(infra, customer, load.served, all_of_them=True)
    assert sorted(r["request_id"] for r in rows) == sorted(load.served)
    await assert_books_balance(customer, before, rows, billing_addr)


async def _expire_leases(infra: Infra, user_id: int) -> int:
    """Make the user's leases due for the reaper now (billing is paused and idle: no lock)."""
    conn = await asyncpg.connect(infra.database_url)
    try:
        await conn.execute("SET lock_timeout = '5s'")
        status = await conn.execute(
            "UPDATE billing.leases SET reap_at = now() - interval '1 second' "
            "WHERE user_id = $1 AND status = 'active'",
            user_id,
        )
        return int(status.split()[-1])
    finally:
        await conn.close()


async def _leases_returned(infra: Infra, user_id: int) -> bool | None:
    conn = await asyncpg.connect(infra.database_url)
    try:
        active = await conn.fetchval(
            "SELECT count(*) FROM billing.leases WHERE user_id = $1 AND status = 'active'",
            user_id,
        )
    finally:
        await conn.close()
    return True if active == 0 else None


async def test_billing_outage_then_relay_killed_bills_every_served_request_once(
    world: World, relay_service: Child, billing_service: Child, billing_addr: str, infra: Infra
) -> None:
    customer = await new_customer(world, quota=QUOTA)
    before = await wallet(customer)
    async with steady_load(world, customer, clients=4) as warm:  # the relay takes a lease
        await served_at_least(warm, 8)
    await settled_rows(infra, customer, warm.served, all_of_them=True)
    try:
        with paused(billing_service):
            async with steady_load(world, customer, clients=8) as load:
                await served_at_least(load, 30)  # from the lease: billing is not needed
            await asyncio.sleep(4 * DURABLE_WITHIN)
            await _kill(relay_service, signal.SIGKILL)
            # The reaper would return the lease at its first sweep, before the deferred
            # settlements are applied, if it did not wait for the stream.
            assert await _expire_leases(infra, customer.user_id) >= 1
    finally:
        await restore(relay_service)
    served = warm.served + load.served
    rows = await settled_rows(infra, customer, served, all_of_them=True)
    assert sorted(r["request_id"] for r in rows) == sorted(served)
    await eventually(lambda: _leases_returned(infra, customer.user_id), within=30.0)
    await assert_books_balance(customer, before, rows, billing_addr)


async def test_nats_restarted_mid_load_bills_every_served_request_once(
    world: World,
    web_url: str,
    relay_service: Child,
    billing_service: Child,
    billing_addr: str,
    infra: Infra,
) -> None:
    assert infra.nats is not None
    nats_server = infra.nats
    customer = await new_customer(world, quota=QUOTA)
    before = await wallet(customer)
    async with steady_load(world, customer, clients=4) as warm:  # the relay takes a lease
        await served_at_least(warm, 8)
    await settled_rows(infra, customer, warm.served, all_of_them=True)
    try:
        # Billing pauses and NATS goes away: what is served now can only be kept in the
        # relay, retried until NATS is back; then the relay dies.
        with paused(billing_service):
            await asyncio.to_thread(nats_server.stop)
            async with steady_load(world, customer, clients=8) as load:
                await asyncio.sleep(1.0)
                await asyncio.to_thread(nats_server.start)
                await asyncio.sleep(0.5)
            assert load.served
            await wait_stored(infra.nats_url, len(load.served), within=NATS_BACK_WITHIN)
            await _kill(relay_service, signal.SIGKILL)
    finally:
        if nats_server.proc is None or nats_server.proc.poll() is not None:
            await asyncio.to_thread(nats_server.start)
        await restore(relay_service)
    await all_ready(web_url)
    served = warm.served + load.served
    rows = await settled_rows(infra, customer, served, all_of_them=True)
    assert sorted(r["request_id"] for r in rows) == sorted(served)
    await assert_books_balance(customer, before, rows, billing_addr)
