"""Pieces of the settlement fault tests: steady chat load that records every served request id,
the customer's consumption rows read from the database, and the money checks."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import httpx
import nats
from veloera.billing.v1 import billing_pb2

from services.cli.supervisor import Child, wait_ready
from services.shared import subjects
from tests.support.clients import BillingClient
from tests.support.helpers import admin_channel
from tests.support.world import CONSUME_LOG, Customer, World, eventually, wallet

REQUEST_ID_HEADER = "X-Veloera-Request-Id"
CLIENTS = 16
MAX_TOKENS = 16  # small holds: one lease covers the whole test


class HasDatabase(Protocol):
    @property
    def database_url(self) -> str: ...


@dataclass
class Load:
    """What the clients saw: the request id of every 200, and the time the load ran."""

    served: list[str] = field(default_factory=list)
    failures: int = 0
    started: float = field(default_factory=time.monotonic)
    stopped: float = 0.0

    @property
    def rate(self) -> float:
        """Responses per second while the load ran."""
        return len(self.served) / max((self.stopped or time.monotonic()) - self.started, 1e-3)


async def _client(http: httpx.AsyncClient, world: World, customer: Customer, load: Load) -> None:
    body = {
        "model": customer.model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": MAX_TOKENS,
    }
    headers = {"Authorization": f"Bearer sk-{customer.key}"}
    try:
        reply = await http.post(
            f"{world.relay_url}/v1/chat/completions", json=body, headers=headers
        )
    except httpx.HTTPError:
        load.failures += 1
        await asyncio.sleep(0.05)  # the relay is down: do not spin
        return
    if reply.status_code == 200:
        load.served.append(reply.headers[REQUEST_ID_HEADER])
    else:
        load.failures += 1
        await asyncio.sleep(0.05)


@asynccontextmanager
async def steady_load(
    world: World, customer: Customer, *, clients: int = CLIENTS
) -> AsyncIterator[Load]:
    """`clients` concurrent clients sending chat requests as fast as they are answered, until
    the block ends."""
    load = Load()
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:

        async def client() -> None:
            while not stop.is_set():
                await _client(http, world, customer, load)

        tasks = [asyncio.create_task(client()) for _ in range(clients)]
        try:
            yield load
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            load.stopped = time.monotonic()


async def served_at_least(load: Load, count: int) -> None:
    async def probe() -> bool | None:
        return True if len(load.served) >= count else None

    await eventually(probe, within=30.0)


async def consume_rows(infra: HasDatabase, user_id: int) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(infra.database_url)
    try:
        return await conn.fetch(
            "SELECT request_id, quota FROM billing.logs WHERE user_id = $1 AND type = $2",
            user_id,
            CONSUME_LOG,
        )
    finally:
        await conn.close()


async def settled_rows(
    infra: HasDatabase, customer: Customer, served: list[str], *, all_of_them: bool
) -> list[asyncpg.Record]:
    """The customer's consume rows once they stopped changing (and, with `all_of_them`, once
    every served request has one)."""
    previous: list[asyncpg.Record] = []

    async def probe() -> list[asyncpg.Record] | None:
        nonlocal previous
        rows = await consume_rows(infra, customer.user_id)
        logged = {r["request_id"] for r in rows}
        complete = not all_of_them or logged >= set(served)
        stable = complete and len(rows) == len(previous)
        previous = rows
        if stable:
            return rows
        await asyncio.sleep(1.0)  # a late copy from the stream would show up by then
        return None

    return await eventually(probe, within=60.0)


async def assert_books_balance(
    customer: Customer, before: dict[str, Any], rows: list[asyncpg.Record], billing_addr: str
) -> None:
    """Nothing charged twice, the wallet moved by exactly the logged charges, and every
    wallet equals the sum of its ledger rows."""
    ids = [r["request_id"] for r in rows]
    assert len(ids) == len(set(ids)), "a request was charged twice"
    after = await wallet(customer)
    assert before["quota"] - after["quota"] == sum(r["quota"] for r in rows)
    channel = admin_channel(billing_addr)
    try:
        stub = BillingClient(channel)
        report = await stub.CheckLedger(
            billing_pb2.CheckLedgerRequest(user_ids=[customer.user_id]), timeout=30
        )
    finally:
        await channel.close()
    assert report.consistent, list(report.mismatches)


async def wait_stored(nats_url: str, count: int, *, within: float) -> None:
    """Wait (no longer than `within`) until the settlement stream holds `count` messages."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            info = await js.stream_info(subjects.SETTLEMENTS_STREAM)
            if info.state.messages >= count:
                return
            await asyncio.sleep(0.05)
    finally:
        await nc.close()


@contextmanager
def paused(child: Child) -> Iterator[None]:
    """SIGSTOP the service for the block (an outage that keeps its connections), then SIGCONT."""
    assert child.proc is not None
    child.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        child.proc.send_signal(signal.SIGCONT)


async def web_ready(web_url: str) -> int:
    """The status of web's /readyz, which follows accounts' and billing's gRPC health."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        return (await client.get(f"{web_url}/readyz")).status_code


async def all_ready(web_url: str) -> None:
    """After an outage a test caused: wait until accounts and billing serve again, so the
    next test starts from a healthy system."""

    async def ready() -> bool | None:
        return True if await web_ready(web_url) == 200 else None

    await eventually(ready, within=30.0)


async def restore(child: Child) -> None:
    """Start a service the test stopped, and wait until it serves."""
    if child.exited() is not None:
        child.start()
    await wait_ready(child.spec)
