"""Scale-out on one machine: a second relay, web, accounts, billing and tasks beside the
session's, on the same PostgreSQL and NATS. Requests spread over both relays are each charged
once, the wallet never pays for more than it holds, and either web serves the same session."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from services.cli.infra import loopback_service_env
from services.cli.supervisor import Child, ServiceSpec, start_all, stop_all
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.fault_kit import assert_books_balance, consume_rows
from tests.support.helpers import PLANE
from tests.support.infra import Infra
from tests.support.relay_kit import set_option
from tests.support.relay_kit import world as world
from tests.support.world import (
    Customer,
    World,
    eventually,
    new_customer,
    wait_for_model,
    wallet,
)

pytestmark = pytest.mark.e2e


@dataclass
class Replicas:
    relay_url: str
    web_url: str


@pytest.fixture(scope="module")
def replicas(
    service_env: dict[str, str], infra: Infra, relay_url: str, web_url: str, tasks_service: Child
) -> Iterator[Replicas]:
    """The second copy of every service: the session's settings on ports of its own."""
    fresh = loopback_service_env(infra.database_url, service_env["NATS_URL"], PLANE)
    env = {
        **service_env,
        **{name: value for name, value in fresh.items() if name.endswith(("_PORT", "_ADDR"))},
    }
    specs = [
        ServiceSpec("accounts", grpc_addr=env["ACCOUNTS_ADDR"]),
        ServiceSpec("billing", grpc_addr=env["BILLING_ADDR"]),
        ServiceSpec("tasks", http_url=f"http://127.0.0.1:{env['TASKS_METRICS_PORT']}"),
        ServiceSpec("relay", http_url=f"http://127.0.0.1:{env['RELAY_PORT']}"),
        ServiceSpec("web", http_url=f"http://127.0.0.1:{env['WEB_PORT']}"),
    ]
    children = [Child(spec, env, log_path=infra.work_dir / f"{spec.name}-2.log") for spec in specs]
    try:
        asyncio.run(start_all(children))
        yield Replicas(relay_url=specs[3].http_url, web_url=specs[4].http_url)
    finally:
        stop_all(children)


async def _spread(
    relays: list[str], customer: Customer, count: int, *, max_tokens: int = 16
) -> tuple[list[str], list[int]]:
    """`count` parallel chat calls, alternating between `relays`: the request ids served and
    the status codes of the rest."""
    body = {
        "model": customer.model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": max_tokens,
    }
    headers = {"Authorization": f"Bearer sk-{customer.key}"}
    async with httpx.AsyncClient(timeout=30.0) as http:
        replies = await asyncio.gather(
            *(
                http.post(
                    f"{relays[i % len(relays)]}/v1/chat/completions", json=body, headers=headers
                )
                for i in range(count)
            )
        )
    served = [r.headers["X-Veloera-Request-Id"] for r in replies if r.status_code == 200]
    refused = [r.status_code for r in replies if r.status_code != 200]
    return served, refused


async def _rows_for(infra: Infra, customer: Customer, count: int) -> list[asyncpg.Record]:
    async def probe() -> list[asyncpg.Record] | None:
        rows = await consume_rows(infra, customer.user_id)
        return rows if len(rows) >= count else None

    return await eventually(probe, within=30.0)


async def test_requests_over_two_relays_are_each_charged_once(
    world: World, replicas: Replicas, infra: Infra, billing_addr: str
) -> None:
    customer = await new_customer(world, quota=100_000_000)
    await wait_for_model(replicas.relay_url, customer.key, customer.model)
    before = await wallet(customer)
    served, refused = await _spread([world.relay_url, replicas.relay_url], customer, 60)
    assert refused == [] and len(served) == 60
    rows = await _rows_for(infra, customer, len(served))
    assert sorted(r["request_id"] for r in rows) == sorted(served)
    await assert_books_balance(customer, before, rows, billing_addr)


async def test_two_relays_never_serve_beyond_the_balance(
    world: World, replicas: Replicas, infra: Infra, billing_addr: str
) -> None:
    """A wallet for 120 one-unit requests, 300 asked for over both relays at once: whatever is
    served is paid for, nothing written off, and the wallet never goes below zero."""
    fake = FakeOpenAI(prompt_tokens=1, completion_tokens=1)
    fake.start()
    try:
        customer = await new_customer(world, quota=120, base_url=fake.url)
        options = {o["key"]: o["value"] for o in await world.root.call("GET", "/api/option/")}
        ratios = json.loads(options.get("ModelRatio") or "{}")
        ratios[customer.model] = 0.1  # hold 1 unit, charge 1 unit
        await set_option(world.root, "ModelRatio", json.dumps(ratios))
        await wait_for_model(replicas.relay_url, customer.key, customer.model)
        await asyncio.sleep(1.0)  # the new price reached both relays
        before = await wallet(customer)
        served, refused = await _spread(
            [world.relay_url, replicas.relay_url], customer, 300, max_tokens=1
        )
        assert 0 < len(served) <= 120
        assert set(refused) <= {403, 429}, refused  # out of quota, never a 5xx
        rows = await _rows_for(infra, customer, len(served))
        assert sorted(r["request_id"] for r in rows) == sorted(served)
        assert all(r["quota"] == 1 for r in rows)

        async def settled() -> int | None:  # leases returned: what is left is the balance
            quota = int((await wallet(customer))["quota"])
            return quota if quota == 120 - len(served) else None

        assert await eventually(settled, within=60.0) >= 0
        await assert_books_balance(customer, before, rows, billing_addr)
    finally:
        fake.stop()


async def test_the_second_web_serves_the_same_session(world: World, replicas: Replicas) -> None:
    customer = await new_customer(world)
    first = await wallet(customer)
    console = customer.console
    original = console.client.base_url
    console.client.base_url = httpx.URL(replicas.web_url)
    try:
        second = await wallet(customer)
    finally:
        console.client.base_url = original
    assert second["id"] == first["id"] and second["quota"] == first["quota"]
