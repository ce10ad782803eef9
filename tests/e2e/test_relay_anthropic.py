"""End to end: the official `anthropic` SDK (what Claude Code speaks) through the relay to an
OpenAI-compatible channel: text, streams, tool calls, count_tokens, errors and billing."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import Message, MessageParam, ToolParam

from tests.fakes.openai_upstream import TOOL_CALL, FakeOpenAI
from tests.support.helpers import create_channel
from tests.support.relay_kit import PNG_1x1, charged_once, steer
from tests.support.relay_kit import world as world
from tests.support.world import (
    World,
    expected_charge,
    new_customer,
    settled_logs,
    wallet,
)

pytestmark = pytest.mark.e2e
HI: list[MessageParam] = [{"role": "user", "content": "hi"}]
CAP = 16
WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
async def claude(world: World) -> AsyncIterator[list[anthropic.AsyncAnthropic]]:
    """Anthropic clients made by `client()`, closed when the test ends."""
    clients: list[anthropic.AsyncAnthropic] = []
    yield clients
    for item in clients:
        await item.close()


def client(
    world: World, clients: list[anthropic.AsyncAnthropic], key: str
) -> anthropic.AsyncAnthropic:
    """The SDK pointed at the relay as Claude Code is (ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY)."""
    made = anthropic.AsyncAnthropic(api_key=f"sk-{key}", base_url=world.relay_url, max_retries=0)
    clients.append(made)
    return made


@pytest.fixture
def wordy() -> Iterator[FakeOpenAI]:
    """An upstream whose every answer is 2,000 words."""
    with FakeOpenAI(reply_text=" ".join(f"w{i}" for i in range(2000))) as fake:
        yield fake


@pytest.fixture
def broken() -> Iterator[FakeOpenAI]:
    """An upstream that answers every call with a 500."""
    with FakeOpenAI(force_status=500) as fake:
        yield fake


async def test_message_is_answered_in_anthropic_format_and_charged_once(
    world: World, claude: list[anthropic.AsyncAnthropic]
) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)

    reply = await client(world, claude, customer.key).messages.create(
        model=customer.model,
        max_tokens=200,
        system="Be brief.",
        messages=HI,
        stop_sequences=["END"],
        extra_body={"temperature": 0.5, "top_k": 3},
    )

    assert reply.type == "message" and reply.role == "assistant"
    assert reply.model == customer.model
    assert [block.type for block in reply.content] == ["text"]
    assert reply.content[0].type == "text" and reply.content[0].text == world.fake.reply_text
    assert reply.stop_reason == "end_turn"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (10, 5)
    [sent] = world.fake.requests_for(customer.model)
    assert sent.path == "/v1/chat/completions"
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert sent.body["max_tokens"] == 200 and sent.body["stop"] == ["END"]
    assert sent.body["temperature"] == 0.5 and "top_k" not in sent.body
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 5)
    assert (log["prompt_tokens"], log["completion_tokens"]) == (10, 5)
    assert log["is_stream"] is False


async def test_stream_is_anthropics_event_sequence_and_charged_from_upstream_usage(
    world: World, claude: list[anthropic.AsyncAnthropic]
) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)

    async with client(world, claude, customer.key).messages.stream(
        model=customer.model, max_tokens=200, messages=HI
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()

    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds[-2] == "message_delta"
    assert "content_block_start" in kinds and "content_block_stop" in kinds
    assert final.content[0].type == "text" and final.content[0].text == world.fake.reply_text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 5
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 5)
    assert log["is_stream"] is True


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
async def test_tool_call_round_trip(
    world: World, claude: list[anthropic.AsyncAnthropic], streamed: bool
) -> None:
    customer = await new_customer(world)
    await steer(world, customer, "fake-tools")
    claude_client = client(world, claude, customer.key)
    ask: list[MessageParam] = [{"role": "user", "content": "Weather in Paris?"}]

    reply: Message
    if streamed:
        async with claude_client.messages.stream(
            model=customer.model, max_tokens=200, messages=ask, tools=[WEATHER]
        ) as stream:
            reply = await stream.get_final_message()
    else:
        reply = await claude_client.messages.create(
            model=customer.model, max_tokens=200, messages=ask, tools=[WEATHER]
        )

    assert reply.stop_reason == "tool_use"
    [use] = [block for block in reply.content if block.type == "tool_use"]
    assert (use.id, use.name, use.input) == (TOOL_CALL["id"], "get_weather", {"city": "Paris"})
    sent = world.fake.last_request.body
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "The weather in a city",
            },
        }
    ]

    history: list[MessageParam] = [
        *ask,
        {"role": "assistant", "content": reply.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 C"}],
        },
    ]
    await claude_client.messages.create(
        model=customer.model, max_tokens=200, messages=history, tools=[WEATHER]
    )
    messages = world.fake.last_request.body["messages"]
    assert messages[1]["role"] == "assistant"
    assert messages[1]["tool_calls"] == [
        {
            "id": TOOL_CALL["id"],
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    assert messages[2] == {
        "role": "tool",
        "tool_call_id": TOOL_CALL["id"],
        "content": "sunny, 21 C",
    }
    await settled_logs(customer, 2)


async def test_count_tokens_counts_locally_without_upstream_or_charge(
    world: World, claude: list[anthropic.AsyncAnthropic]
) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    claude_client = client(world, claude, customer.key)

    short = await claude_client.messages.count_tokens(model=customer.model, messages=HI)
    longer = await claude_client.messages.count_tokens(
        model=customer.model,
        system="You are a helpful assistant who answers in French.",
        messages=[{"role": "user", "content": "Tell me about the history of Paris, please."}],
        tools=[WEATHER],
    )

    assert 0 < short.input_tokens < longer.input_tokens
    assert world.fake.requests_for(customer.model) == []
    after = await wallet(customer)
    assert after["quota"] == before["quota"]
    assert after["request_count"] == before["request_count"]


async def test_bad_key_is_an_authentication_error(
    world: World, claude: list[anthropic.AsyncAnthropic]
) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        await client(world, claude, "not-a-real-key").messages.create(
            model="any", max_tokens=10, messages=HI
        )
    assert caught.value.status_code == 401
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": caught.value.body["error"]["message"]},  # type: ignore[index]
    }


async def test_no_quota_is_a_permission_error_and_nothing_is_charged(
    world: World, claude: list[anthropic.AsyncAnthropic]
) -> None:
    customer = await new_customer(world, quota=100)
    before = await wallet(customer)
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        await client(world, claude, customer.key).messages.create(
            model=customer.model, max_tokens=4000, messages=HI
        )
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "permission_error"
    assert world.fake.requests_for(customer.model) == []
    assert (await wallet(customer))["quota"] == before["quota"]


async def test_unknown_model_is_not_found(
    world: World, claude: list[anthropic.AsyncAnthropic]
) -> None:
    customer = await new_customer(world)
    with pytest.raises(anthropic.NotFoundError) as caught:
        await client(world, claude, customer.key).messages.create(
            model="no-such-model-anywhere", max_tokens=10, messages=HI
        )
    body: Any = caught.value.body
    assert body["error"]["type"] == "not_found_error"


async def test_bad_input_is_an_invalid_request_error(world: World) -> None:
    customer = await new_customer(world)
    async with httpx.AsyncClient(timeout=10.0) as http:
        answer = await http.post(
            world.relay_url + "/v1/messages",
            headers={"x-api-key": f"sk-{customer.key}", "anthropic-version": "2023-06-01"},
            json={"model": customer.model, "messages": HI},  # no max_tokens
        )
    assert answer.status_code == 400
    assert answer.json()["type"] == "error"
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in answer.json()["error"]["message"]


async def test_upstream_failure_is_an_api_error_and_releases_the_hold(
    world: World, claude: list[anthropic.AsyncAnthropic], broken: FakeOpenAI
) -> None:
    customer = await new_customer(world, base_url=broken.url)
    before = await wallet(customer)
    with pytest.raises(anthropic.InternalServerError) as caught:
        await client(world, claude, customer.key).messages.create(
            model=customer.model, max_tokens=10, messages=HI
        )
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert (await wallet(customer))["quota"] == before["quota"]


async def test_stream_past_max_tokens_is_cut_with_stop_reason_max_tokens(
    world: World, claude: list[anthropic.AsyncAnthropic], wordy: FakeOpenAI
) -> None:
    customer = await new_customer(world, base_url=wordy.url)
    before = await wallet(customer)

    async with client(world, claude, customer.key).messages.stream(
        model=customer.model, max_tokens=CAP, messages=HI
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()

    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == CAP
    assert final.content[0].type == "text"
    assert 0 < len(final.content[0].text.split()) < 2000
    log = await charged_once(customer, before)
    assert log["completion_tokens"] == CAP
    assert log["quota"] == expected_charge(log["prompt_tokens"], CAP)


async def test_non_stream_only_channel_answers_the_stream_as_events(
    world: World, claude: list[anthropic.AsyncAnthropic]
) -> None:
    customer = await new_customer(world)
    await create_channel(
        world.root,
        base_url=world.fake.url,
        models=[customer.model],
        priority=10,
        setting=json.dumps({"stream_support": "NON_STREAM_ONLY"}),
    )
    await asyncio.sleep(0.3)
    before = await wallet(customer)

    async with client(world, claude, customer.key).messages.stream(
        model=customer.model, max_tokens=200, messages=HI
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()

    assert text == world.fake.reply_text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5
    sent = world.fake.requests_for(customer.model)[-1]
    assert sent.body.get("stream") is not True
    log = await charged_once(customer, before)
    assert log["is_stream"] is True and log["quota"] == expected_charge(10, 5)


async def test_messages_with_another_method_is_a_405(world: World) -> None:
    async with httpx.AsyncClient(timeout=10.0) as http:
        answer = await http.get(world.relay_url + "/v1/messages")
    assert answer.status_code == 405
    assert answer.json()["error"]["type"] == "invalid_request_error"


async def test_thinking_is_a_reasoning_effort_for_reasoning_models_only(
    world: World, claude: list[anthropic.AsyncAnthropic]
) -> None:
    customer = await new_customer(world)
    claude_client = client(world, claude, customer.key)
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}

    await claude_client.messages.create(
        model=customer.model, max_tokens=3000, messages=HI, thinking=thinking
    )
    assert "reasoning_effort" not in world.fake.last_request.body  # not a reasoning model

    await steer(world, customer, "o3-mini")
    await claude_client.messages.create(
        model=customer.model, max_tokens=3000, messages=HI, thinking=thinking
    )
    sent = world.fake.last_request.body
    assert sent["model"] == "o3-mini" and sent["reasoning_effort"] == "low"
    assert sent["max_completion_tokens"] == 3000 and "max_tokens" not in sent
    logs = await settled_logs(customer, 2)
    assert any(json.loads(row["other"] or "{}").get("reasoning_effort") == "low" for row in logs)


async def test_base64_image_reaches_the_channel_as_a_data_url(
    world: World, claude: list[anthropic.AsyncAnthropic]
) -> None:
    customer = await new_customer(world)
    data = base64.b64encode(PNG_1x1).decode()
    reply = await client(world, claude, customer.key).messages.create(
        model=customer.model,
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": data},
                    },
                ],
            }
        ],
    )
    assert reply.content[0].type == "text"
    [sent] = world.fake.requests_for(customer.model)
    assert sent.body["messages"][0]["content"] == [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
    ]


async def test_a_stream_the_upstream_breaks_off_ends_with_an_error_event(
    world: World, claude: list[anthropic.AsyncAnthropic]
) -> None:
    customer = await new_customer(world)
    await steer(world, customer, "fake-stall")  # sends a first chunk, then nothing
    claude_client = client(world, claude, customer.key)
    # after STREAMING_TIMEOUT (3 s in tests) the relay sends Anthropic's `error` event,
    # which the SDK raises, instead of a message_stop that would pass for a whole answer
    with pytest.raises(anthropic.APIStatusError, match="broke off"):
        async with claude_client.messages.stream(
            model=customer.model, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            await stream.get_final_message()
