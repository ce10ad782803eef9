"""End to end: error log rows (LogErrorEnabled) and chat content in log rows
(LogChatContentEnabled), read back through the web console's log API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support.helpers import create_channel
from tests.support.relay_kit import apply, charged_once
from tests.support.relay_kit import options as options
from tests.support.relay_kit import world as world
from tests.support.world import (
    Customer,
    World,
    eventually,
    new_customer,
    price_model,
    sdk,
    settled_logs,
    wallet,
)

pytestmark = pytest.mark.e2e
ERROR_LOG = 6
CONTENT_KEYS = {"input_content", "output_content", "context", "system_prompt"}


async def error_logs(customer: Customer) -> list[dict[str, Any]]:
    page = await customer.console.call("GET", "/api/log/self", params={"p": 1, "type": ERROR_LOG})
    items: list[dict[str, Any]] = page["items"]
    return items


async def failing_customer(world: World) -> tuple[Customer, int]:
    """A customer whose model goes first to a channel answering 400 (never retried)."""
    customer = await new_customer(world)
    await price_model(world.root, "fail-400")
    bad = await create_channel(
        world.root,
        base_url=world.fake.url,
        models=[customer.model],
        priority=10,
        model_mapping=json.dumps({customer.model: "fail-400"}),
    )
    await asyncio.sleep(0.3)
    return customer, bad


async def fail_once(world: World, customer: Customer) -> None:
    with pytest.raises(openai.BadRequestError):
        await sdk(world, customer.key).chat.completions.create(
            model=customer.model, messages=[{"role": "user", "content": "hi"}]
        )


async def test_failed_request_writes_an_error_row_only_when_enabled(
    world: World, options: dict[str, str]
) -> None:
    await apply(world, options, {"LogErrorEnabled": "false"})
    customer, bad = await failing_customer(world)
    before = await wallet(customer)
    await fail_once(world, customer)  # option off: no row

    await apply(world, options, {"LogErrorEnabled": "true"})
    await fail_once(world, customer)

    async def written() -> list[dict[str, Any]] | None:
        rows = await error_logs(customer)
        return rows or None

    [row] = await eventually(written)
    assert row["type"] == ERROR_LOG
    assert row["model_name"] == customer.model
    assert row["channel"] == bad
    assert row["quota"] == 0
    assert "fake upstream error 400" in row["content"]
    other = json.loads(row["other"])
    assert other["error_type"] == "invalid_request_error"
    assert other["error_code"] == "fake_400"
    assert other["status_code"] == 400
    assert other["channel_id"] == bad and other["channel_type"] == 1
    assert other["channel_name"].startswith("ch")
    assert "admin_info" not in other  # the tried channels stay admin-only

    # Failures cost nothing (the hold is released) and leave no consume row.
    async def refunded() -> bool | None:
        return True if (await wallet(customer))["quota"] == before["quota"] else None

    assert await eventually(refunded)
    assert await settled_logs(customer, 0) == []
    await asyncio.sleep(0.5)
    assert len(await error_logs(customer)) == 1  # the request made with the option off: none


CONVERSATION: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And 3+3?"},
]


async def test_chat_content_reaches_the_log_only_when_enabled(
    world: World, options: dict[str, str]
) -> None:
    await apply(world, options, {"LogChatContentEnabled": "false"})
    customer = await new_customer(world)
    client = sdk(world, customer.key)
    before = await wallet(customer)
    await client.chat.completions.create(model=customer.model, messages=CONVERSATION)
    log = await charged_once(customer, before)
    assert not CONTENT_KEYS & set(json.loads(log["other"] or "{}"))

    await apply(world, options, {"LogChatContentEnabled": "true"})
    reply = await client.chat.completions.create(model=customer.model, messages=CONVERSATION)
    stream = await client.chat.completions.create(
        model=customer.model, messages=CONVERSATION, stream=True
    )
    streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    logs = await settled_logs(customer, 3)
    for row, text in zip(logs[:2], (streamed, reply.choices[0].message.content), strict=True):
        other = json.loads(row["other"])
        assert other["input_content"] == "And 3+3?"
        assert other["context"] == "user: What is 2+2?\nassistant: 4"
        assert other["system_prompt"] == "Answer briefly."
        assert other["output_content"] == text == world.fake.reply_text
