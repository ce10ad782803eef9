"""PostgreSQL crashes mid-load and comes back: no service needs a restart, readiness says
not-ready while it is down, and every request the relay served is charged exactly once."""

from __future__ import annotations

import asyncio
import signal

import pytest

from services.cli.supervisor import Child
from tests.support.fault_kit import (
    all_ready,
    assert_books_balance,
    served_at_least,
    settled_rows,
    steady_load,
    web_ready,
)
from tests.support.infra import Infra
from tests.support.relay_kit import world as world
from tests.support.world import World, eventually, new_customer, wallet

pytestmark = pytest.mark.e2e

QUOTA = 100_000_000


def _crash(infra: Infra) -> None:
    """Immediate shutdown (SIGQUIT): what a crash or an OOM kill leaves, recovered from the
    WAL at the next start."""
    pg = infra.postgres
    assert pg is not None and pg.proc is not None
    pg.proc.send_signal(signal.SIGQUIT)
    pg.proc.wait(30)


async def test_postgres_crashed_mid_load_recovers_and_bills_every_served_request_once(
    world: World,
    infra: Infra,
    web_url: str,
    relay_service: Child,
    accounts_service: Child,
    billing_service: Child,
    billing_addr: str,
) -> None:
    assert infra.postgres is not None
    pg = infra.postgres
    customer = await new_customer(world, quota=QUOTA)
    before = await wallet(customer)
    assert await web_ready(web_url) == 200
    async with steady_load(world, customer, clients=4) as warm:  # key cached, lease taken
        await served_at_least(warm, 8)
    await settled_rows(infra, customer, warm.served, all_of_them=True)
    try:
        async with steady_load(world, customer, clients=8) as load:
            await served_at_least(load, 8)
            await asyncio.to_thread(_crash, infra)

            async def not_ready() -> bool | None:
                return True if await web_ready(web_url) == 503 else None

            # accounts and billing report NOT_SERVING; web's /readyz follows them
            await eventually(not_ready, within=20.0)
            during = len(load.served)
            await asyncio.to_thread(pg.start)

            await all_ready(web_url)
            await served_at_least(load, during + 8)  # serving after the outage too
    finally:
        if pg.proc is None or pg.proc.poll() is not None:
            await asyncio.to_thread(pg.start)
    for child in (relay_service, accounts_service, billing_service):
        assert child.restarts == 0 and child.exited() is None, child.spec.name
    served = warm.served + load.served
    rows = await settled_rows(infra, customer, served, all_of_them=True)
    assert sorted(r["request_id"] for r in rows) == sorted(served)
    await assert_books_balance(customer, before, rows, billing_addr)
