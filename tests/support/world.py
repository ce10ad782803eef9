"""The relay end-to-end world: a customer (user, funded key, priced model, channel at the fake
upstream), waiting for what settles, and the charge to expect."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import openai

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.helpers import (
    Console,
    create_channel,
    create_token,
    create_user,
    unique_name,
)

MODEL_RATIO = 2.0  # $4 per 1M prompt tokens


COMPLETION_RATIO = 3.0


CONSUME_LOG = 2


T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], *, within: float = 10.0) -> T:
    """Poll until `probe` returns a value: settlement and cache refresh happen after the reply."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {within}s")
        await asyncio.sleep(0.05)


@dataclass
class World:
    root: Console
    web_url: str
    relay_url: str
    fake: FakeOpenAI
    clients: list[openai.AsyncOpenAI]
    consoles: list[Console]


async def price_model(root: Console, model: str) -> None:
    """Give `model` the test ratios (other tests' models stay as they are)."""
    options = {item["key"]: item["value"] for item in await root.call("GET", "/api/option/")}
    ratios = json.loads(options.get("ModelRatio") or "{}")
    completions = json.loads(options.get("CompletionRatio") or "{}")
    ratios[model] = MODEL_RATIO
    completions[model] = COMPLETION_RATIO
    await root.call("PUT", "/api/option/", json={"key": "ModelRatio", "value": json.dumps(ratios)})
    await root.call(
        "PUT", "/api/option/", json={"key": "CompletionRatio", "value": json.dumps(completions)}
    )


def expected_charge(prompt: int, completion: int) -> int:
    return round((prompt + completion * COMPLETION_RATIO) * MODEL_RATIO)


async def wait_for_model(relay_url: str, key: str, model: str) -> None:
    """The relay learns about a new channel from accounts' change event."""

    async def probe() -> bool | None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            reply = await client.get(
                f"{relay_url}/v1/models", headers={"Authorization": f"Bearer sk-{key}"}
            )
        if reply.status_code != 200:
            return None
        return True if any(m["id"] == model for m in reply.json()["data"]) else None

    await eventually(probe)


@dataclass
class Customer:
    console: Console
    user_id: int
    token: dict[str, Any]
    model: str
    channel_id: int

    @property
    def key(self) -> str:
        return str(self.token["key"])


async def new_customer(
    world: World, *, quota: int = 1_000_000, base_url: str | None = None, **token_fields: Any
) -> Customer:
    """A user with a balance, a key, and a fresh priced model served by one channel."""
    model = unique_name("m-")
    await price_model(world.root, model)
    channel_id = await create_channel(
        world.root, base_url=base_url or world.fake.url, models=[model]
    )
    console, user_id = await create_user(world.root, quota=quota)
    world.consoles.append(console)
    token = await create_token(console, **token_fields)
    customer = Customer(
        console=console, user_id=user_id, token=token, model=model, channel_id=channel_id
    )
    await wait_for_model(world.relay_url, customer.key, model)
    return customer


async def customer_on(
    world: World, channel_type: int, base_url: str, *, key: str = "", prefix: str = "m-"
) -> Customer:
    """A funded user with a key, and a fresh priced model that only one channel of
    `channel_type` at `base_url` serves (native provider tests)."""
    model = unique_name(prefix)
    await price_model(world.root, model)
    fields: dict[str, Any] = {"type": channel_type, **({"key": key} if key else {})}
    channel_id = await create_channel(world.root, base_url=base_url, models=[model], **fields)
    console, user_id = await create_user(world.root, quota=1_000_000)
    world.consoles.append(console)
    token = await create_token(console)
    customer = Customer(
        console=console, user_id=user_id, token=token, model=model, channel_id=channel_id
    )
    await wait_for_model(world.relay_url, customer.key, model)
    return customer


async def wallet(customer: Customer) -> dict[str, Any]:
    data: dict[str, Any] = await customer.console.call("GET", "/api/user/self")
    return data


async def token_item(customer: Customer) -> dict[str, Any]:
    data: dict[str, Any] = await customer.console.call("GET", f"/api/token/{customer.token['id']}")
    return data


async def settled_logs(customer: Customer, count: int) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        page = await customer.console.call(
            "GET", "/api/log/self", params={"p": 1, "type": CONSUME_LOG}
        )
        items: list[dict[str, Any]] = page["items"]
        return items if len(items) >= count else None

    return await eventually(probe)


def sdk(world: World, key: str, *, prefix: str = "/v1") -> openai.AsyncOpenAI:
    """An SDK client for the relay, closed when the test ends."""
    client = openai.AsyncOpenAI(
        api_key=f"sk-{key}", base_url=f"{world.relay_url}{prefix}", max_retries=0
    )
    world.clients.append(client)
    return client
