"""End to end: usage can never out-run the balance, nothing is written off while money is left,
a price change applies to the next request, small balances are not refused falsely."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from veloera.billing.v1 import billing_pb2

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.clients import BillingClient
from tests.support.helpers import Console, admin_channel
from tests.support.relay_kit import set_option
from tests.support.relay_kit import world as world
from tests.support.world import (
    Customer,
    World,
    eventually,
    new_customer,
    sdk,
    wallet,
)

pytestmark = pytest.mark.e2e
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def greedy() -> Iterator[FakeOpenAI]:
    """An upstream that reports 200k completion tokens for every answer (and a 1-token prompt,
    below the relay's own count: only the completion is out of bounds here; a prompt above the
    hold is test_usage_above_the_hold_is_taken_before_anything_is_written_off's)."""
    with FakeOpenAI(prompt_tokens=1, completion_tokens=200_000) as fake:
        yield fake


async def set_ratio(root: Console, model: str, ratio: float, completion: float = 1.0) -> None:
    options = {item["key"]: item["value"] for item in await root.call("GET", "/api/option/")}
    ratios = json.loads(options.get("ModelRatio") or "{}")
    completions = json.loads(options.get("CompletionRatio") or "{}")
    ratios[model], completions[model] = ratio, completion
    await set_option(root, "ModelRatio", json.dumps(ratios))
    await set_option(root, "CompletionRatio", json.dumps(completions))


async def all_logs(customer: Customer, count: int) -> list[dict[str, Any]]:
    """Every consumption row of the customer, once `count` are there."""

    async def probe() -> list[dict[str, Any]] | None:
        page = await customer.console.call(
            "GET", "/api/log/self", params={"p": 1, "type": 2, "page_size": 100}
        )
        items: list[dict[str, Any]] = page["items"]
        return items if len(items) >= count else None

    return await eventually(probe)


async def burst(
    world: World, customer: Customer, n: int, **kw: Any
) -> tuple[int, int, list[BaseException]]:
    """n parallel chat calls: (served, refused for quota, other errors)."""
    client = sdk(world, customer.key)
    results = await asyncio.gather(
        *(
            client.chat.completions.create(model=customer.model, messages=HI, **kw)
            for _ in range(n)
        ),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, openai.PermissionDeniedError)]
    others = [
        r for r in results if isinstance(r, BaseException) and not isinstance(r, openai.APIError)
    ] + [
        r
        for r in results
        if isinstance(r, openai.APIError) and not isinstance(r, openai.PermissionDeniedError)
    ]
    served = sum(1 for r in results if not isinstance(r, BaseException))
    return served, len(refused), others


async def settled(world: World, customer: Customer, before: int, served: int) -> int:
    """Once every served request has its row and the leases are back: the balance change,
    checked against the rows and the ledger."""
    logs = await all_logs(customer, served) if served else []
    assert len(logs) == served
    charged = sum(int(row["quota"]) for row in logs)

    async def balance_matches() -> int | None:
        now = int((await wallet(customer))["quota"])
        return now if before - now == charged else None

    return await eventually(balance_matches, within=15)


async def test_usage_beyond_the_balance_is_never_served(world: World, greedy: FakeOpenAI) -> None:
    """Without max_tokens the hold is the model's output limit: a 3,000-unit wallet cannot
    cover it, so nothing is served and nothing is written off."""
    customer = await new_customer(world, quota=3_000, base_url=greedy.url)
    before = int((await wallet(customer))["quota"])
    served, refused, others = await burst(world, customer, 20)
    assert (served, refused, others) == (0, 20, [])
    assert int((await wallet(customer))["quota"]) == before
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await sdk(world, customer.key).chat.completions.create(model=customer.model, messages=HI)
    assert caught.value.code == "insufficient_user_quota"
    assert "set a lower max_tokens or top up" in caught.value.message


async def test_max_tokens_caps_what_is_billed(world: World, greedy: FakeOpenAI) -> None:
    """With max_tokens 16 the upstream's 200k completion tokens are billed as 16: nothing is
    served beyond what the wallet pays for, and every charge fits its hold, so nothing is
    written off."""
    customer = await new_customer(world, quota=3_000, base_url=greedy.url)
    before = int((await wallet(customer))["quota"])
    served, refused, others = await burst(world, customer, 40, max_tokens=16)
    assert others == [] and served > 0 and served + refused == 40
    now = await settled(world, customer, before, served)
    logs = await all_logs(customer, served)
    assert all(int(row["completion_tokens"]) <= 16 for row in logs)
    written_off = sum(int(json.loads(row["other"]).get("uncollected", 0)) for row in logs)
    assert written_off == 0, (written_off, now)


async def test_usage_above_the_hold_is_taken_before_anything_is_written_off(
    world: World,
) -> None:
    """The upstream reports a longer prompt than the relay counted, so each charge is above its
    hold: the difference comes from the wallet (and the lease) while any money is left."""
    fake = FakeOpenAI(prompt_tokens=70, completion_tokens=5)
    fake.start()
    try:
        customer = await new_customer(world, quota=2_000, base_url=fake.url)
        before = int((await wallet(customer))["quota"])
        served, _refused, others = await burst(world, customer, 40, max_tokens=5)
        assert others == [] and served > 0
        now = await settled(world, customer, before, served)
        logs = await all_logs(customer, served)
        written_off = sum(int(json.loads(row["other"]).get("uncollected", 0)) for row in logs)
        assert written_off == 0 or now == 0, (written_off, now)
    finally:
        fake.stop()


async def test_a_small_balance_serves_every_request_it_can_hold(world: World) -> None:
    """100 parallel requests whose holds fit the wallet together: none is refused (a lease
    may take only a quarter of the balance; the rest must not be refused for it)."""
    fake = FakeOpenAI(prompt_tokens=1, completion_tokens=1)
    fake.start()
    try:
        customer = await new_customer(world, quota=150, base_url=fake.url)
        await set_ratio(world.root, customer.model, 0.1)  # hold 1 unit, charge 1 unit
        await asyncio.sleep(0.5)
        before = int((await wallet(customer))["quota"])
        served, refused, others = await burst(world, customer, 100, max_tokens=1)
        assert (served, refused, others) == (100, 0, [])
        assert before - await settled(world, customer, before, served) == 100
    finally:
        fake.stop()


async def test_a_price_change_applies_to_the_next_request(world: World) -> None:
    customer = await new_customer(world)
    client = sdk(world, customer.key)
    await client.chat.completions.create(model=customer.model, messages=HI, max_tokens=5)
    [first] = await all_logs(customer, 1)
    await set_ratio(world.root, customer.model, 20.0, 3.0)  # ten times MODEL_RATIO
    await asyncio.sleep(1.0)
    await client.chat.completions.create(model=customer.model, messages=HI, max_tokens=5)
    logs = await all_logs(customer, 2)
    newest = max(logs, key=lambda row: int(row["id"]))
    assert int(newest["quota"]) == 10 * int(first["quota"])


async def test_the_ledger_is_consistent_after_the_money_tests(billing_addr: str) -> None:
    channel = admin_channel(billing_addr)
    try:
        stub = BillingClient(channel)
        report = await stub.CheckLedger(billing_pb2.CheckLedgerRequest(), timeout=30)
    finally:
        await channel.close()
    assert report.consistent, list(report.mismatches)


async def test_n_answers_are_held_and_billed_for_all_of_them(world: World) -> None:
    """n=3 with max_tokens 16 may produce 48 completion tokens: held and billed as such."""
    fake = FakeOpenAI(prompt_tokens=10, completion_tokens=40)
    fake.start()
    try:
        customer = await new_customer(world, base_url=fake.url)
        await sdk(world, customer.key).chat.completions.create(
            model=customer.model, messages=HI, max_tokens=16, n=3
        )
        [row] = await all_logs(customer, 1)
        assert int(row["completion_tokens"]) == 40
    finally:
        fake.stop()
