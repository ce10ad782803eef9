"""End to end: billing dies while a request is in flight; the settlement is applied once later."""

from __future__ import annotations

import asyncio

import pytest

from services.cli.supervisor import Child, wait_ready
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.relay_kit import world as world
from tests.support.world import (
    World,
    eventually,
    expected_charge,
    new_customer,
    sdk,
    settled_logs,
    wallet,
)

pytestmark = pytest.mark.e2e


async def test_billing_killed_mid_request_settles_exactly_once_after_restart(
    world: World, billing_service: Child
) -> None:
    slow = FakeOpenAI(slow_seconds=3.0, behavior="fake-slow")
    slow.start()
    try:
        customer = await new_customer(world, base_url=slow.url)
        before = await wallet(customer)
        client = sdk(world, customer.key)
        request = asyncio.create_task(
            client.chat.completions.create(
                model=customer.model,
                messages=[{"role": "user", "content": "hi"}],
            )
        )

        async def upstream_called() -> bool | None:  # Reserve is done before the upstream call
            return True if slow.requests_for(customer.model) else None

        await eventually(upstream_called)
        assert billing_service.proc is not None
        billing_service.proc.kill()  # no drain, no goodbye
        await asyncio.to_thread(billing_service.proc.wait)
        reply = await request  # served although billing is gone: Settle goes to JetStream
        assert reply.choices[0].message.content == slow.reply_text
        await asyncio.sleep(1.0)
    finally:
        slow.stop()
        if billing_service.exited() is not None:
            billing_service.start()
            await wait_ready(billing_service.spec)
    [log] = await settled_logs(customer, 1)
    charge = expected_charge(slow.prompt_tokens, slow.completion_tokens)
    assert log["quota"] == charge

    async def charged() -> dict[str, object] | None:
        after = await wallet(customer)
        return after if before["quota"] - after["quota"] == charge else None

    after = await eventually(charged)
    await asyncio.sleep(1.0)  # a second application would show up by now
    assert before["quota"] - (await wallet(customer))["quota"] == charge
    assert after["request_count"] == before["request_count"] + 1
