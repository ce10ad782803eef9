"""Two relay processes with BILLING_LEASES=true serving one user at once: requests are held
locally against leases, no overdraft, every served request charged once, the unspent rest back
in the wallet when the leases end, the ledger consistent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import openai
import pytest
from veloera.billing.v1 import billing_pb2

from services.cli.infra import free_port
from services.cli.supervisor import Child, ServiceSpec, start_all, stop_all
from tests.support.clients import BillingClient
from tests.support.helpers import admin_channel
from tests.support.relay_kit import world as world
from tests.support.world import (
    World,
    eventually,
    expected_charge,
    new_customer,
    settled_logs,
    wait_for_model,
    wallet,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lease_relays(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, relay_url: str
) -> Any:
    """Two relays with short leases (2 s, returned by billing 0 s after expiry)."""
    work_dir: Path = tmp_path_factory.mktemp("lease-relays")
    children: list[Child] = []
    for n in range(2):
        port = free_port()
        env = {
            **service_env,
            "RELAY_PORT": str(port),
            "BILLING_LEASES": "true",
            "BILLING_LEASE_TTL": "2",
            "BILLING_LEASE_HOLD": "0",
            "BILLING_LEASE_REQUESTS": "8",
        }
        spec = ServiceSpec("relay", http_url=f"http://127.0.0.1:{port}")
        children.append(Child(spec, env, log_path=work_dir / f"relay-lease-{n}.log"))
    asyncio.run(start_all(children))
    try:
        yield [child.spec.http_url for child in children]
    finally:
        stop_all(children)


@pytest.fixture
async def clients(lease_relays: list[str]) -> AsyncIterator[list[str]]:
    yield lease_relays


async def ask(url: str, key: str, model: str) -> str:
    client = openai.AsyncOpenAI(api_key=f"sk-{key}", base_url=f"{url}/v1", max_retries=0)
    try:
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=20
        )
        return "ok"
    except openai.PermissionDeniedError as exc:
        return str(exc.code)
    finally:
        await client.close()


async def check_ledger(billing_addr: str, user_id: int) -> None:
    channel = admin_channel(billing_addr)
    try:
        stub = BillingClient(channel)
        report = await stub.CheckLedger(
            billing_pb2.CheckLedgerRequest(user_ids=[user_id]), timeout=30
        )
    finally:
        await channel.close()
    assert report.consistent, list(report.mismatches)


async def lease_holders(database_url: str, user_id: int) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT holder FROM billing.leases WHERE user_id = $1", user_id)
    finally:
        await conn.close()
    return {row["holder"] for row in rows}


async def test_two_leasing_relays_never_overdraw_and_charge_each_request_once(
    world: World, clients: list[str], billing_addr: str, infra: Any
) -> None:
    charge = expected_charge(world.fake.prompt_tokens, world.fake.completion_tokens)
    # Enough for a handful of holds (prompt + max_tokens 20, times the ratio), not for all.
    customer = await new_customer(world, quota=400)
    for url in clients:
        await wait_for_model(url, customer.key, customer.model)
    before = await wallet(customer)
    outcomes = await asyncio.gather(
        *(ask(clients[n % 2], customer.key, customer.model) for n in range(40))
    )
    served = outcomes.count("ok")
    assert 1 <= served <= 10, outcomes  # the log page shows 10
    assert set(outcomes) <= {"ok", "insufficient_user_quota"}
    logs = await settled_logs(customer, served)
    assert len(logs) == served and all(log["quota"] == charge for log in logs)

    async def leases_back() -> dict[str, Any] | None:
        now = await wallet(customer)
        return now if now["quota"] == before["quota"] - served * charge else None

    after = await eventually(leases_back, within=20.0)
    assert after["quota"] >= 0 and after["used_quota"] == served * charge
    assert after["request_count"] == before["request_count"] + served
    await check_ledger(billing_addr, customer.user_id)
    # A quarter of 400 covers no hold: both relays served this user per request, no lease.
    assert await lease_holders(infra.database_url, customer.user_id) == set()


async def test_a_leased_relay_serves_with_balance_and_refuses_without(
    world: World, clients: list[str], billing_addr: str
) -> None:
    rich = await new_customer(world, quota=10_000_000)
    poor = await new_customer(world, quota=5)
    for url in clients:
        await wait_for_model(url, rich.key, rich.model)
        await wait_for_model(url, poor.key, poor.model)
    assert await ask(clients[0], poor.key, poor.model) == "insufficient_user_quota"
    results = [await ask(clients[n % 2], rich.key, rich.model) for n in range(10)]
    assert results == ["ok"] * 10
    charge = expected_charge(world.fake.prompt_tokens, world.fake.completion_tokens)
    assert len(await settled_logs(rich, 10)) == 10

    async def settled() -> bool | None:
        return True if (await wallet(rich))["quota"] == 10_000_000 - 10 * charge else None

    await eventually(settled, within=20.0)
    assert (await wallet(poor))["quota"] == 5
    await check_ledger(billing_addr, rich.user_id)
