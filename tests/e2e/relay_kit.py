"""Shared pieces of the relay e2e tests: the `world` fixture and small helpers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.test_chat_flow import (
    Customer,
    World,
    price_model,
    settled_logs,
    wait_for_model,
    wallet,
)
from tests.fakes.openai_upstream import FakeOpenAI
from tests.helpers import Console, create_channel, create_token, create_user, root_console


@pytest.fixture
async def world(
    web_url: str, relay_url: str, fake_openai: FakeOpenAI, tasks_service: object
) -> AsyncIterator[World]:
    root = await root_console(web_url)
    world = World(
        root=root, web_url=web_url, relay_url=relay_url, fake=fake_openai, clients=[], consoles=[]
    )
    try:
        yield world
    finally:
        for client in world.clients:
            await client.close()
        for console in [root, *world.consoles]:
            await console.aclose()


async def set_option(root: Console, key: str, value: str) -> None:
    await root.call("PUT", "/api/option/", json={"key": key, "value": value})


async def set_model_price(root: Console, model: str, usd: float) -> None:
    options = {item["key"]: item["value"] for item in await root.call("GET", "/api/option/")}
    prices = json.loads(options.get("ModelPrice") or "{}")
    prices[model] = usd
    await set_option(root, "ModelPrice", json.dumps(prices))


async def charged_once(customer: Customer, before: dict[str, Any]) -> dict[str, Any]:
    """The single log row of the customer's request; the wallet moved by exactly its quota."""
    [log] = await settled_logs(customer, 1)
    after = await wallet(customer)
    assert before["quota"] - after["quota"] == log["quota"]
    assert log["model_name"] == customer.model
    return log


@pytest.fixture
async def options(world: World) -> AsyncIterator[dict[str, str]]:
    """Options a test sets; each is put back to its previous value afterwards."""
    before = {item["key"]: item["value"] for item in await world.root.call("GET", "/api/option/")}
    changed: dict[str, str] = {}
    yield changed
    for key in changed:
        await set_option(world.root, key, before.get(key, ""))
    await asyncio.sleep(0.3)


async def apply(world: World, changed: dict[str, str], values: dict[str, str]) -> None:
    """Set options (recorded in the `options` fixture's dict) and let the relay reload."""
    for key, value in values.items():
        changed[key] = value
        await set_option(world.root, key, value)
    await asyncio.sleep(0.3)


async def customer_on(
    world: World, model: str, *, base_url: str, type_: int, key: str, **fields: Any
) -> Customer:
    """A user with a key and a priced `model` served by one channel of type `type_`."""
    await price_model(world.root, model)
    channel_id = await create_channel(
        world.root, base_url=base_url, models=[model], type=type_, key=key, **fields
    )
    console, user_id = await create_user(world.root, quota=1_000_000)
    world.consoles.append(console)
    token = await create_token(console)
    customer = Customer(
        console=console, user_id=user_id, token=token, model=model, channel_id=channel_id
    )
    await wait_for_model(world.relay_url, customer.key, model)
    return customer
