"""Shared pieces of the relay e2e tests: the `world` fixture and small helpers."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.helpers import Console, create_channel, create_token, create_user, root_console
from tests.support.world import (
    Customer,
    World,
    price_model,
    settled_logs,
    wait_for_model,
    wallet,
)


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


HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


TOOLS: list[ChatCompletionToolParam] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
]


async def steer(world: World, customer: Customer, behaviour: str, priority: int = 10) -> None:
    await price_model(world.root, behaviour)
    await create_channel(
        world.root,
        base_url=world.fake.url,
        models=[customer.model],
        priority=priority,
        model_mapping=json.dumps({customer.model: behaviour}),
    )
    await asyncio.sleep(0.3)


QUOTA_PER_UNIT = 500_000


IMAGE_PRICE = 0.02  # USD per image


def wav_bytes(seconds: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 8000 * seconds)
    return buffer.getvalue()


PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5b1e1a10000000049454e44ae426082"
)


async def add_channel(world: World, customer: Customer, **fields: Any) -> int:
    """Another channel for the customer's model; the relay sees it once listed again."""
    channel_id = await create_channel(
        world.root,
        base_url=fields.pop("base_url", world.fake.url),
        models=[customer.model],
        **fields,
    )
    await asyncio.sleep(0.3)  # the change event reloads the relay's snapshot
    return channel_id


def mapped(customer: Customer, behaviour: str) -> str:
    return json.dumps({customer.model: behaviour})
