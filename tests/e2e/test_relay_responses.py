"""End to end: OpenAI's Responses API (`/v1/responses`) over channels that speak only chat
(Anthropic and Gemini native, an OpenAI-compatible DeepSeek channel), driven by the official
`openai` SDK: text, instructions, typed event streams, parallel function calls and their
outputs fed back, max_output_tokens, cache tokens, refusals of what only Responses can carry,
upstream errors; each answer charged once. An OpenAI channel still gets the request as it
came."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.anthropic_upstream import REPLY, THOUGHT, TOOL_USES, FakeAnthropic
from tests.fakes.gemini_upstream import REPLY as GEMINI_REPLY
from tests.fakes.gemini_upstream import FakeGemini
from tests.support.relay_kit import charged_once, customer_on
from tests.support.relay_kit import world as world
from tests.support.world import Customer, World, expected_charge, sdk, wallet

pytestmark = pytest.mark.e2e
CLAUDE, GEMINI, DEEPSEEK = 14, 24, 43
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CLOCK: Any = {"type": "function", "name": "get_time", "parameters": {"type": "object"}}


@pytest.fixture(scope="module")
def claude_fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def gemini_fake() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


def named(behaviour: str) -> str:
    return f"{behaviour}{uuid.uuid4().hex[:8]}"


async def on_claude(world: World, fake: FakeAnthropic, behaviour: str) -> Customer:
    key = "sk-ant-" + uuid.uuid4().hex
    return await customer_on(world, named(behaviour), base_url=fake.url, type_=CLAUDE, key=key)


def sent_to(fake: FakeAnthropic | FakeGemini, model: str) -> Any:
    [request] = [r for r in fake.requests if model in r.path or r.body.get("model") == model]
    return request


async def test_a_response_over_an_anthropic_channel_is_a_messages_call_charged_once(
    world: World, claude_fake: FakeAnthropic
) -> None:
    customer = await on_claude(world, claude_fake, "plain")
    before = await wallet(customer)

    response = await sdk(world, customer.key).responses.create(
        model=customer.model,
        instructions="Be brief.",
        input="hi",
        max_output_tokens=100,
        temperature=0.5,
    )

    assert response.output_text == REPLY
    assert response.status == "completed"
    assert response.id.startswith("resp_")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (10, 5)
    assert response.usage.total_tokens == 15
    request = sent_to(claude_fake, customer.model)
    assert request.path == "/v1/messages"
    assert request.body["system"] == [{"type": "text", "text": "Be brief."}]
    assert request.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    ]
    assert request.body["max_tokens"] == 100
    log = await charged_once(customer, before)
    assert (log["prompt_tokens"], log["completion_tokens"]) == (10, 5)
    assert log["quota"] == expected_charge(10, 5)


async def test_a_streamed_response_carries_parallel_function_calls_as_typed_events(
    world: World, claude_fake: FakeAnthropic
) -> None:
    customer = await on_claude(world, claude_fake, "tools")
    before = await wallet(customer)
    client = sdk(world, customer.key)

    types: list[str] = []
    sequence: list[int] = []
    async with client.responses.stream(
        model=customer.model, input="weather and time in Paris?", tools=[WEATHER, CLOCK]
    ) as stream:
        async for event in stream:
            types.append(event.type)
            sequence.append(event.sequence_number)
        final = await stream.get_final_response()

    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert sequence == list(range(len(sequence)))
    assert "response.output_text.delta" in types
    assert types.count("response.function_call_arguments.delta") >= 2
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        (use["name"], use["input"]) for use in TOOL_USES
    ]
    assert [c.call_id for c in calls] == [use["id"] for use in TOOL_USES]
    assert final.output_text == "Checking."
    assert final.usage is not None and final.usage.output_tokens == 5
    tools = sent_to(claude_fake, customer.model).body["tools"]
    assert [tool["name"] for tool in tools] == ["get_weather", "get_time"]
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 5)


async def test_function_call_outputs_fed_back_reach_the_provider_as_tool_results(
    world: World, claude_fake: FakeAnthropic
) -> None:
    customer = await on_claude(world, claude_fake, "plain")

    response = await sdk(world, customer.key).responses.create(
        model=customer.model,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "weather in Paris?"},
            {
                "type": "function_call",
                "call_id": "toolu_01",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
            },
            {"type": "function_call_output", "call_id": "toolu_01", "output": "sunny, 21 C"},
        ],
    )

    assert response.output_text == REPLY
    messages = sent_to(claude_fake, customer.model).body["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_01",
                "name": "get_weather",
                "input": {"city": "Paris"},
            }
        ],
    }
    assert messages[2]["content"][0]["type"] == "tool_result"
    assert messages[2]["content"][0]["tool_use_id"] == "toolu_01"


async def test_max_output_tokens_leaves_the_response_incomplete(
    world: World, claude_fake: FakeAnthropic
) -> None:
    customer = await on_claude(world, claude_fake, "max")
    client = sdk(world, customer.key)

    response = await client.responses.create(model=customer.model, input="hi")
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"

    # As OpenAI ends such a stream: response.incomplete, not response.completed.
    events = [
        e
        async for e in await client.responses.create(model=customer.model, input="hi", stream=True)
    ]
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.status == "incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.output_text == REPLY


async def test_reasoning_comes_back_as_a_reasoning_item(
    world: World, claude_fake: FakeAnthropic
) -> None:
    customer = await on_claude(world, claude_fake, "thinking")

    response = await sdk(world, customer.key).responses.create(model=customer.model, input="hi")

    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "message"]
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    assert [part.text for part in reasoning.summary] == [THOUGHT]
    assert response.output_text == REPLY


async def test_cache_tokens_appear_in_usage_and_are_billed_once(
    world: World, claude_fake: FakeAnthropic
) -> None:
    customer = await on_claude(world, claude_fake, "plain")
    claude_fake.cache_read = 30
    try:
        before = await wallet(customer)
        response = await sdk(world, customer.key).responses.create(model=customer.model, input="hi")
    finally:
        claude_fake.cache_read = 0

    assert response.usage is not None
    assert response.usage.input_tokens == 40
    assert response.usage.input_tokens_details.cached_tokens == 30
    log = await charged_once(customer, before)
    assert log["prompt_tokens"] == 40


async def test_a_response_over_a_gemini_channel_streams_text(
    world: World, gemini_fake: FakeGemini
) -> None:
    key = "gm-" + uuid.uuid4().hex
    customer = await customer_on(
        world, named("plain"), base_url=gemini_fake.url, type_=GEMINI, key=key
    )
    before = await wallet(customer)

    deltas: list[str] = []
    async with sdk(world, customer.key).responses.stream(
        model=customer.model,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
    ) as stream:
        async for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = await stream.get_final_response()

    assert "".join(deltas) == GEMINI_REPLY == final.output_text
    assert ":streamGenerateContent" in sent_to(gemini_fake, customer.model).path
    await charged_once(customer, before)


async def test_what_only_responses_can_carry_is_refused_before_any_charge(
    world: World, claude_fake: FakeAnthropic
) -> None:
    customer = await on_claude(world, claude_fake, "plain")
    before = await wallet(customer)
    client = sdk(world, customer.key)
    asked = len(claude_fake.requests)

    with pytest.raises(openai.BadRequestError) as built_in:
        await client.responses.create(
            model=customer.model, input="news?", tools=[{"type": "web_search_preview"}]
        )
    with pytest.raises(openai.BadRequestError) as stored:
        await client.responses.create(
            model=customer.model, input="and then?", previous_response_id="resp_123"
        )
    with pytest.raises(openai.BadRequestError) as unknown:
        await client.responses.create(
            model=customer.model,
            input=[{"type": "mystery_item"}],  # type: ignore[list-item,misc]
        )

    assert built_in.value.code == "unsupported_on_channel"
    assert "web_search_preview" in built_in.value.message
    assert stored.value.code == "unsupported_on_channel"
    assert "previous_response_id" in stored.value.message
    assert unknown.value.code == "unsupported_on_channel"
    assert len(claude_fake.requests) == asked
    assert (await wallet(customer))["quota"] == before["quota"]


async def test_an_upstream_error_comes_back_in_openai_shape_and_costs_nothing(
    world: World, claude_fake: FakeAnthropic
) -> None:
    customer = await on_claude(world, claude_fake, "fail-400-")
    before = await wallet(customer)

    with pytest.raises(openai.BadRequestError) as refused:
        await sdk(world, customer.key).responses.create(model=customer.model, input="hi")

    assert "fake failure 400" in refused.value.message
    assert (await wallet(customer))["quota"] == before["quota"]


async def test_an_openai_channel_gets_the_responses_request_as_it_came(world: World) -> None:
    customer = await customer_on(
        world, named("plain"), base_url=world.fake.url, type_=1, key="sk-" + uuid.uuid4().hex
    )

    await sdk(world, customer.key).responses.create(
        model=customer.model, input="news?", tools=[{"type": "web_search_preview"}]
    )

    [request] = [r for r in world.fake.requests if r.body.get("model") == customer.model]
    assert request.path == "/v1/responses"
    assert request.body["tools"] == [{"type": "web_search_preview"}]


async def test_a_chat_only_openai_compatible_channel_gets_chat(world: World) -> None:
    customer = await customer_on(
        world,
        named("plain"),
        base_url=world.fake.url,
        type_=DEEPSEEK,
        key="sk-" + uuid.uuid4().hex,
    )
    before = await wallet(customer)

    response = await sdk(world, customer.key).responses.create(model=customer.model, input="hi")

    [request] = [r for r in world.fake.requests if r.body.get("model") == customer.model]
    assert request.path == "/v1/chat/completions"
    assert request.body["messages"] == [{"role": "user", "content": "hi"}]
    assert response.output_text
    await charged_once(customer, before)


async def test_a_non_stream_only_channel_answers_a_stream_as_typed_events(
    world: World, claude_fake: FakeAnthropic
) -> None:
    key = "sk-ant-" + uuid.uuid4().hex
    customer = await customer_on(
        world,
        named("tools"),
        base_url=claude_fake.url,
        type_=CLAUDE,
        key=key,
        setting=json.dumps({"stream_support": "NON_STREAM_ONLY"}),
    )
    before = await wallet(customer)

    async with sdk(world, customer.key).responses.stream(
        model=customer.model, input="weather?", tools=[WEATHER, CLOCK]
    ) as stream:
        final = await stream.get_final_response()

    assert sent_to(claude_fake, customer.model).body.get("stream") is not True
    assert final.output_text == "Checking."
    calls = [item for item in final.output if item.type == "function_call"]
    assert [json.loads(c.arguments) for c in calls] == [use["input"] for use in TOOL_USES]
    await charged_once(customer, before)
