"""End to end: Anthropic (type 14) channels. The official `openai` SDK (and the `anthropic`
SDK through the Anthropic ingress) through the relay to a fake speaking Anthropic's Messages
API: text, streams, parallel tool calls with streamed arguments, images, thinking, stop
reasons, cache tokens billed once, and Anthropic error bodies as OpenAI errors."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.anthropic_upstream import REPLY, THOUGHT, TOOL_USES, FakeAnthropic
from tests.support.helpers import create_channel
from tests.support.relay_kit import PNG_1x1, apply, charged_once, customer_on
from tests.support.relay_kit import options as options
from tests.support.relay_kit import world as world
from tests.support.world import (
    COMPLETION_RATIO,
    MODEL_RATIO,
    Customer,
    World,
    eventually,
    expected_charge,
    price_model,
    sdk,
    wallet,
)

pytestmark = pytest.mark.e2e
HI: Any = [{"role": "user", "content": "hi"}]
CLAUDE = 14
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    },
]


@pytest.fixture(scope="module")
def claude_fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


def named(behaviour: str, suffix: str = "") -> str:
    """A fresh model name the fake reads `behaviour` from."""
    return f"{behaviour}{uuid.uuid4().hex[:8]}{suffix}"


async def claude_channel(world: World, fake: FakeAnthropic, model: str, **fields: Any) -> int:
    return await create_channel(
        world.root,
        base_url=fake.url,
        models=[model],
        type=CLAUDE,
        key="sk-ant-" + uuid.uuid4().hex,
        **fields,
    )


async def customer_of(world: World, fake: FakeAnthropic, model: str) -> Customer:
    """A user with a key and a priced `model` served by one Anthropic channel."""
    key = "sk-ant-" + uuid.uuid4().hex
    return await customer_on(world, model, base_url=fake.url, type_=CLAUDE, key=key)


def sent_to(fake: FakeAnthropic, model: str) -> dict[str, Any]:
    [request] = [r for r in fake.requests if r.body.get("model") == model]
    return request.body


async def test_chat_is_a_messages_call_answered_as_a_completion_and_charged_once(
    world: World, claude_fake: FakeAnthropic
) -> None:
    customer = await customer_of(world, claude_fake, named("plain"))
    before = await wallet(customer)

    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model,
        messages=[{"role": "system", "content": "Be brief."}, *HI],
        stop=["END"],
        temperature=0.5,
        user="alice",
    )

    assert reply.choices[0].message.content == REPLY
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (10, 5)
    request = claude_fake.last
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"].startswith("sk-ant-")
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    assert request.body == {
        "model": customer.model,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_tokens": 8192,  # Anthropic requires it: the default of upstream's claude setting
        "temperature": 0.5,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "alice"},
    }
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 5)


async def test_stream_becomes_openai_chunks_with_a_final_usage_chunk(
    world: World, claude_fake: FakeAnthropic
) -> None:
    customer = await customer_of(world, claude_fake, named("plain"))
    before = await wallet(customer)

    stream = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (10, 5)
    assert sent_to(claude_fake, customer.model)["stream"] is True
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 5)
    assert log["is_stream"] is True


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
async def test_parallel_tool_calls_round_trip(
    world: World, claude_fake: FakeAnthropic, streamed: bool
) -> None:
    customer = await customer_of(world, claude_fake, named("tools"))
    client = sdk(world, customer.key)
    ask: Any = [{"role": "user", "content": "Weather and time in Paris?"}]

    if streamed:
        stream = await client.chat.completions.create(
            model=customer.model, messages=ask, tools=TOOLS, tool_choice="required", stream=True
        )
        calls: dict[int, dict[str, str]] = {}
        pieces = 0
        finish = None
        async for chunk in stream:
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for call in choice.delta.tool_calls or []:
                    slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                    if call.id:
                        slot["id"] = call.id
                    if call.function and call.function.name:
                        slot["name"] = call.function.name
                    if call.function and call.function.arguments:
                        slot["arguments"] += call.function.arguments
                        pieces += 1
        got = [(c["id"], c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())]
        assert pieces > len(TOOL_USES)  # the arguments arrived in pieces
    else:
        reply = await client.chat.completions.create(
            model=customer.model, messages=ask, tools=TOOLS, tool_choice="required"
        )
        finish = reply.choices[0].finish_reason
        got = [
            (c.id, c.function.name, json.loads(c.function.arguments))
            for c in reply.choices[0].message.tool_calls or []
            if c.type == "function"
        ]
    assert finish == "tool_calls"
    assert got == [(use["id"], use["name"], use["input"]) for use in TOOL_USES]
    sent = sent_to(claude_fake, customer.model)
    assert sent["tools"][0] == {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": TOOLS[0]["function"]["parameters"],
    }
    assert sent["tool_choice"] == {"type": "any"}

    history: Any = [
        *ask,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": use_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for use_id, name, args in got
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_01", "content": "sunny, 21 C"},
        {"role": "tool", "tool_call_id": "toolu_02", "content": "10:00"},
    ]
    claude_fake.requests.clear()
    await client.chat.completions.create(model=customer.model, messages=history, tools=TOOLS)
    messages = claude_fake.last.body["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", **use} for use in TOOL_USES],
    }
    assert messages[2] == {  # both results in one user turn, as Anthropic wants them
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny, 21 C"},
            {"type": "tool_result", "tool_use_id": "toolu_02", "content": "10:00"},
        ],
    }


async def test_images_reach_anthropic_as_base64_and_url_sources(
    world: World, claude_fake: FakeAnthropic
) -> None:
    customer = await customer_of(world, claude_fake, named("image"))
    png = base64.b64encode(PNG_1x1).decode()
    data = f"data:image/png;base64,{png}"
    await sdk(world, customer.key).chat.completions.create(
        model=customer.model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": data}},
                    {"type": "image_url", "image_url": {"url": "https://img.example/cat.png"}},
                ],
            }
        ],
    )
    [message] = sent_to(claude_fake, customer.model)["messages"]
    assert message["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "image", "source": {"type": "url", "url": "https://img.example/cat.png"}},
    ]


@pytest.mark.parametrize(
    ("behaviour", "finish"), [("max", "length"), ("stopseq", "stop")], ids=["max", "stopseq"]
)
async def test_stop_reasons_become_finish_reasons(
    world: World, claude_fake: FakeAnthropic, behaviour: str, finish: str
) -> None:
    customer = await customer_of(world, claude_fake, named(behaviour))
    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI, max_tokens=50
    )
    assert reply.choices[0].finish_reason == finish
    assert sent_to(claude_fake, customer.model)["max_tokens"] == 50


async def test_thinking_suffix_turns_on_extended_thinking(
    world: World, claude_fake: FakeAnthropic
) -> None:
    model = named("thinking", "-thinking")
    customer = await customer_of(world, claude_fake, model)
    reply = await sdk(world, customer.key).chat.completions.create(
        model=model, messages=HI, max_tokens=2000, top_p=0.5
    )
    message: Any = reply.choices[0].message
    assert message.content == REPLY and message.reasoning_content == THOUGHT
    sent = sent_to(claude_fake, model.removesuffix("-thinking"))
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1600}
    assert sent["temperature"] == 1.0 and "top_p" not in sent


async def test_claude_options_set_extra_headers_and_the_default_max_tokens(
    world: World, claude_fake: FakeAnthropic, options: dict[str, str]
) -> None:
    model = named("plain")
    beta = ["output-128k-2025-02-19", "token-efficient-tools-2025-02-19"]
    await apply(
        world,
        options,
        {
            "claude.model_headers_settings": json.dumps(
                {model: {"anthropic-beta": beta, "x-api-key": ["not-this"]}}
            ),
            "claude.default_max_tokens": json.dumps({"default": 8192, model: 64000}),
        },
    )
    customer = await customer_of(world, claude_fake, model)
    await sdk(world, customer.key).chat.completions.create(model=model, messages=HI)
    request = next(r for r in claude_fake.requests if r.body.get("model") == model)
    assert request.headers["anthropic-beta"] == ",".join(beta)
    assert request.headers["x-api-key"].startswith("sk-ant-")  # the key is never overridden
    assert request.body["max_tokens"] == 64000


async def test_cache_reads_and_writes_are_billed_once_at_their_ratios(
    world: World, options: dict[str, str]
) -> None:
    fake = FakeAnthropic(input_tokens=100, output_tokens=20, cache_read=1000, cache_creation=400)
    fake.start()
    try:
        model = named("claude")  # a Claude name: cache writes cost 1.25 (upstream's built-in)
        current = {i["key"]: i["value"] for i in await world.root.call("GET", "/api/option/")}
        cache_ratios = json.loads(current.get("CacheRatio") or "{}")
        await apply(world, options, {"CacheRatio": json.dumps({**cache_ratios, model: 0.1})})
        customer = await customer_of(world, fake, model)
        for streamed in (False, True):
            before = await wallet(customer)
            if streamed:
                stream = await sdk(world, customer.key).chat.completions.create(
                    model=model, messages=HI, stream=True, stream_options={"include_usage": True}
                )
                usage = [c.usage async for c in stream if c.usage is not None][-1]
            else:
                reply = await sdk(world, customer.key).chat.completions.create(
                    model=model, messages=HI
                )
                assert reply.usage is not None
                usage = reply.usage
            assert usage.prompt_tokens == 1500  # input + cache reads + cache writes
            assert usage.prompt_tokens_details is not None
            assert usage.prompt_tokens_details.cached_tokens == 1000
            log = await eventually(partial(_log_after, customer, before))
            after = await wallet(customer)
            assert before["quota"] - after["quota"] == log["quota"]
            expected = (100 + 1000 * 0.1 + 400 * 1.25 + 20 * COMPLETION_RATIO) * MODEL_RATIO
            assert log["quota"] == round(expected)
            other = json.loads(log["other"])
            assert other["cache_tokens"] == 1000 and other["cache_creation_tokens"] == 400
    finally:
        fake.stop()


async def _log_after(customer: Customer, before: dict[str, Any]) -> dict[str, Any] | None:
    page = await customer.console.call("GET", "/api/log/self", params={"p": 1, "type": 2})
    after = await wallet(customer)
    items: list[dict[str, Any]] = page["items"]
    if not items or after["quota"] == before["quota"]:
        return None
    return items[0]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (429, openai.RateLimitError),
        (529, openai.InternalServerError),
    ],
)
async def test_anthropic_error_bodies_reach_the_client_as_openai_errors(
    world: World, claude_fake: FakeAnthropic, status: int, error: type[openai.APIStatusError]
) -> None:
    customer = await customer_of(world, claude_fake, f"fail-{status}-{uuid.uuid4().hex[:6]}")
    claude_fake_model = customer.model
    before = await wallet(customer)
    with pytest.raises(error) as caught:
        await sdk(world, customer.key).chat.completions.create(model=claude_fake_model, messages=HI)
    assert caught.value.status_code == status
    body: Any = caught.value.body
    if status != 429:  # a 429 says the group is saturated, not what one upstream said
        assert f"fake failure {status}" in body["message"]
    assert after_nothing_charged(before, await wallet(customer))


def after_nothing_charged(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return bool(before["quota"] == after["quota"])


async def test_stream_error_event_before_any_output_is_a_failed_attempt(
    world: World, claude_fake: FakeAnthropic
) -> None:
    customer = await customer_of(world, claude_fake, named("stream-error"))
    with pytest.raises(openai.APIStatusError) as caught:
        stream = await sdk(world, customer.key).chat.completions.create(
            model=customer.model, messages=HI, stream=True
        )
        async for _chunk in stream:
            pass
    assert caught.value.status_code == 529


async def test_error_event_mid_stream_reaches_the_client_as_an_error_chunk(
    world: World, claude_fake: FakeAnthropic
) -> None:
    customer = await customer_of(world, claude_fake, named("midstream-error"))
    stream = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI, stream=True
    )
    with pytest.raises(openai.APIError, match="Internal server error"):
        async for _chunk in stream:
            pass


async def test_failing_anthropic_channel_retries_on_another_and_a_401_key_is_disabled(
    world: World, claude_fake: FakeAnthropic, options: dict[str, str]
) -> None:
    await apply(world, options, {"AutomaticDisableChannelEnabled": "true"})
    model = named("plain")
    customer = await customer_of(world, claude_fake, model)
    bad = await claude_channel(
        world, claude_fake, model, priority=10, model_mapping=json.dumps({model: "fail-401"})
    )
    await price_model(world.root, "fail-401")
    await asyncio.sleep(0.3)

    reply = await sdk(world, customer.key).chat.completions.create(model=model, messages=HI)

    assert reply.choices[0].message.content == REPLY
    assert any(r.body.get("model") == "fail-401" for r in claude_fake.requests)

    async def disabled() -> bool | None:
        channel = await world.root.call("GET", f"/api/channel/{bad}")
        statuses = {key["status"] for key in channel["keys"]} | {channel["status"]}
        return True if statuses - {1} else None

    assert await eventually(disabled)


async def test_anthropic_sdk_over_an_anthropic_channel(
    world: World, claude_fake: FakeAnthropic
) -> None:
    customer = await customer_of(world, claude_fake, named("tools"))
    before = await wallet(customer)
    client = anthropic.AsyncAnthropic(
        api_key=f"sk-{customer.key}", base_url=world.relay_url, max_retries=0
    )
    try:
        reply = await client.messages.create(
            model=customer.model,
            max_tokens=300,
            system="Be brief.",
            messages=[{"role": "user", "content": "Weather?"}],
            tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
        )
        async with client.messages.stream(
            model=customer.model, max_tokens=300, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            final = await stream.get_final_message()
    finally:
        await client.close()
    assert reply.stop_reason == "tool_use"
    uses = [(b.id, b.name, b.input) for b in reply.content if b.type == "tool_use"]
    assert uses == [(u["id"], u["name"], u["input"]) for u in TOOL_USES]
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (10, 5)
    first = next(r for r in claude_fake.requests if r.body.get("model") == customer.model)
    assert first.body["system"] == "Be brief."  # the client's own body, as it came
    assert first.body["max_tokens"] == 300
    logs = await eventually(lambda: _logs(customer, 2))
    after = await wallet(customer)
    assert before["quota"] - after["quota"] == sum(log["quota"] for log in logs)
    assert all(log["quota"] == expected_charge(10, 5) for log in logs)


async def _logs(customer: Customer, count: int) -> list[dict[str, Any]] | None:
    page = await customer.console.call("GET", "/api/log/self", params={"p": 1, "type": 2})
    items: list[dict[str, Any]] = page["items"]
    return items if len(items) >= count else None
