"""The conversion matrix: every client format, spoken by its official SDK (openai, anthropic,
google-genai), against every upstream format (an OpenAI-compatible channel, an Anthropic
channel, a Gemini channel), streamed and not: text, parallel tool calls with streamed
arguments, an image, stop reasons, usage with cached input tokens, and upstream errors. What the
client is told must be what the upstream said, in the client's own words, and the wallet must
move once, by the log row of that same usage. Same-format cells (Anthropic to Anthropic, Gemini
to Gemini) pass through unconverted; the others go through the canonical chat form."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.fakes import anthropic_upstream, gemini_upstream, openai_upstream
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.genai_kit import client as genai_client
from tests.support.genai_kit import clients as clients
from tests.support.relay_kit import PNG_1x1, customer_on
from tests.support.relay_kit import world as world
from tests.support.world import Customer, World, price_model, sdk, settled_logs, wallet

pytestmark = pytest.mark.e2e

INGRESS = ("openai", "anthropic", "gemini")
UPSTREAMS = ("openai", "anthropic", "gemini")
SCENARIOS = ("text", "tools", "image", "max", "error")
# Every fake reports the same usage in its own way: 14 input tokens of which 4 were read from
# the provider's cache, and 5 output tokens.
USAGE = (14, 5, 4)
PNG_B64 = base64.b64encode(PNG_1x1).decode()
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CLOCK = {"name": "get_time", "parameters": {"type": "object", "properties": {}}}
STOPS = {
    "stop": "end",
    "length": "max",
    "tool_calls": "tool",
    "end_turn": "end",
    "max_tokens": "max",
    "tool_use": "tool",
    "STOP": "end",
    "MAX_TOKENS": "max",
}


@dataclass
class Answer:
    """What a client was told, in words common to the three formats."""

    text: str
    calls: list[tuple[str, dict[str, Any]]]
    stop: str  # end, max or tool
    usage: tuple[int, int, int]  # input tokens in all, output tokens, cached input tokens


@dataclass
class Upstream:
    """One upstream format: its fake, channel type, the model names that make the fake act
    out each scenario, and what it answers."""

    name: str
    type_: int
    fake: FakeOpenAI | FakeAnthropic | FakeGemini
    behaviours: dict[str, str]
    reply: str
    tool_text: str  # the text the fake sends beside its tool calls
    calls: list[tuple[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, Upstream]]:
    fakes = (
        FakeOpenAI(prompt_tokens=14, completion_tokens=5, cached_tokens=4),
        FakeAnthropic(input_tokens=10, output_tokens=5, cache_read=4),
        FakeGemini(prompt_tokens=14, answer_tokens=5, cached_tokens=4),
    )
    for fake in fakes:
        fake.start()
    openai_fake, claude_fake, gemini_fake = fakes
    parallel: Any = openai_upstream.PARALLEL_CALLS
    uses: Any = anthropic_upstream.TOOL_USES
    gemini_calls: Any = gemini_upstream.CALLS
    behaviours = {"text": "plain", "tools": "tools", "image": "plain", "max": "max"}
    try:
        yield {
            "openai": Upstream(
                "openai",
                1,
                openai_fake,
                {**behaviours, "tools": "fake-parallel-tools", "max": "fake-length"}
                | {"error": "fail-400"},
                openai_upstream.DEFAULT_REPLY,
                "",
                [
                    (call["function"]["name"], json.loads(call["function"]["arguments"]))
                    for call in parallel
                ],
            ),
            "anthropic": Upstream(
                "anthropic",
                14,
                claude_fake,
                {**behaviours, "error": "fail-400-"},
                anthropic_upstream.REPLY,
                "Checking.",
                [(use["name"], use["input"]) for use in uses],
            ),
            "gemini": Upstream(
                "gemini",
                24,
                gemini_fake,
                {**behaviours, "error": "fail-400-"},
                gemini_upstream.REPLY,
                "",
                [(call["name"], call["args"]) for call in gemini_calls],
            ),
        }
    finally:
        for fake in fakes:
            fake.stop()


async def customer_for(world: World, upstream: Upstream, scenario: str) -> Customer:
    """A funded key whose model makes the upstream act out `scenario` (the OpenAI fake reads
    its behaviour from the model name it gets: a channel model mapping)."""
    behaviour = upstream.behaviours[scenario]
    model = f"{behaviour}{uuid.uuid4().hex[:8]}"
    fields: dict[str, Any] = {}
    if upstream.name == "openai":
        fields["model_mapping"] = json.dumps({model: behaviour})
        await price_model(world.root, behaviour)
    return await customer_on(
        world,
        model,
        base_url=upstream.fake.url,
        type_=upstream.type_,
        key=f"sk-{upstream.name}-{uuid.uuid4().hex}",
        **fields,
    )


# ---------------------------------------------------------------------- the three clients


async def ask_openai(world: World, customer: Customer, scenario: str, stream: bool) -> Answer:
    client = sdk(world, customer.key)
    content: Any = "What is the weather in Paris and Rome?"
    if scenario == "image":
        image = {"url": f"data:image/png;base64,{PNG_B64}"}
        content = [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": image},
        ]
    request: dict[str, Any] = {
        "model": customer.model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 200,
    }
    if scenario == "tools":
        request["tools"] = [{"type": "function", "function": tool} for tool in (WEATHER, CLOCK)]
    if not stream:
        reply = await client.chat.completions.create(**request)
        message = reply.choices[0].message
        calls = [
            (call.function.name, json.loads(call.function.arguments))
            for call in message.tool_calls or ()
            if call.type == "function"
        ]
        usage = reply.usage
        assert usage is not None
        return Answer(
            message.content or "",
            calls,
            STOPS[reply.choices[0].finish_reason],
            _openai_usage(usage),
        )
    chunks = await client.chat.completions.create(
        **request, stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage_seen = "", "", None
    calls_by_index: dict[int, list[str]] = {}
    async for chunk in chunks:
        if chunk.usage is not None:
            usage_seen = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or ():
                entry = calls_by_index.setdefault(call.index, ["", ""])
                if call.function is not None:
                    entry[0] += call.function.name or ""
                    entry[1] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    assert usage_seen is not None
    calls = [(name, json.loads(args)) for name, args in calls_by_index.values()]
    return Answer(text, calls, STOPS[finish], _openai_usage(usage_seen))


def _openai_usage(usage: Any) -> tuple[int, int, int]:
    details = usage.prompt_tokens_details
    cached = details.cached_tokens if details is not None and details.cached_tokens else 0
    return (usage.prompt_tokens, usage.completion_tokens, cached)


async def ask_anthropic(world: World, customer: Customer, scenario: str, stream: bool) -> Answer:
    content: Any = "What is the weather in Paris and Rome?"
    if scenario == "image":
        source = {"type": "base64", "media_type": "image/png", "data": PNG_B64}
        content = [{"type": "text", "text": "What is this?"}, {"type": "image", "source": source}]
    request: dict[str, Any] = {
        "model": customer.model,
        "max_tokens": 200,
        "messages": [{"role": "user", "content": content}],
    }
    if scenario == "tools":
        request["tools"] = [
            {
                "name": t["name"],
                "description": t.get("description", ""),
                "input_schema": t["parameters"],
            }
            for t in (WEATHER, CLOCK)
        ]
    async with anthropic.AsyncAnthropic(
        api_key=customer.key, base_url=world.relay_url, max_retries=0
    ) as client:
        if stream:
            async with client.messages.stream(**request) as events:
                message = await events.get_final_message()
        else:
            message = await client.messages.create(**request)
    text = "".join(block.text for block in message.content if block.type == "text")
    calls = [(b.name, dict(b.input)) for b in message.content if b.type == "tool_use"]
    usage = message.usage
    cached = usage.cache_read_input_tokens or 0
    created = usage.cache_creation_input_tokens or 0
    assert message.stop_reason is not None
    return Answer(
        text,
        calls,
        STOPS[message.stop_reason],
        (usage.input_tokens + cached + created, usage.output_tokens, cached),
    )


async def ask_gemini(
    world: World, made: list[genai.Client], customer: Customer, scenario: str, stream: bool
) -> Answer:
    client = genai_client(world, made, customer.key)
    contents: Any = "What is the weather in Paris and Rome?"
    if scenario == "image":
        contents = [
            types.Part.from_text(text="What is this?"),
            types.Part.from_bytes(data=PNG_1x1, mime_type="image/png"),
        ]
    config = types.GenerateContentConfig(max_output_tokens=200)
    if scenario == "tools":
        declarations = [types.FunctionDeclaration(**tool) for tool in (WEATHER, CLOCK)]  # type: ignore[arg-type]
        config.tools = [types.Tool(function_declarations=declarations)]
        config.automatic_function_calling = types.AutomaticFunctionCallingConfig(disable=True)
    answers: list[types.GenerateContentResponse] = []
    if stream:
        async for chunk in await client.aio.models.generate_content_stream(
            model=customer.model, contents=contents, config=config
        ):
            answers.append(chunk)
    else:
        answers.append(
            await client.aio.models.generate_content(
                model=customer.model, contents=contents, config=config
            )
        )
    text, finish = "", ""
    calls: list[tuple[str, dict[str, Any]]] = []
    for answer in answers:
        for candidate in answer.candidates or ():
            if candidate.finish_reason is not None:
                finish = candidate.finish_reason.value
            for part in candidate.content.parts or () if candidate.content else ():
                if part.text and not part.thought:
                    text += part.text
                if part.function_call is not None:
                    calls.append(
                        (part.function_call.name or "", dict(part.function_call.args or {}))
                    )
    metadata = answers[-1].usage_metadata
    assert metadata is not None
    usage = (
        metadata.prompt_token_count or 0,
        metadata.candidates_token_count or 0,
        metadata.cached_content_token_count or 0,
    )
    stop = STOPS[finish]
    return Answer(text, calls, "tool" if calls and stop == "end" else stop, usage)


async def ask(
    world: World,
    made: list[genai.Client],
    ingress: str,
    customer: Customer,
    scenario: str,
    stream: bool,
) -> Answer:
    if ingress == "openai":
        return await ask_openai(world, customer, scenario, stream)
    if ingress == "anthropic":
        return await ask_anthropic(world, customer, scenario, stream)
    return await ask_gemini(world, made, customer, scenario, stream)


def refused_status(error: BaseException) -> int:
    """The HTTP status of an SDK's error for an upstream's refusal."""
    if isinstance(error, openai.APIStatusError | anthropic.APIStatusError):
        return error.status_code
    if isinstance(error, genai_errors.APIError):
        return int(error.code)
    raise AssertionError(f"not an SDK's API error: {error!r}")


def sent_to(upstream: Upstream, customer: Customer) -> dict[str, Any]:
    """The body the upstream got for the customer's request."""
    model = upstream.behaviours["text"] if upstream.name == "openai" else customer.model
    bodies = [
        r.body
        for r in upstream.fake.requests
        if (customer.model in r.path) or r.body.get("model") in (customer.model, model)
    ]
    assert bodies, "the upstream got no request"
    return bodies[-1]


# ---------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("upstream_name", UPSTREAMS, ids=[f"{u}-up" for u in UPSTREAMS])
@pytest.mark.parametrize("ingress", INGRESS, ids=[f"{i}-in" for i in INGRESS])
async def test_cell(
    world: World,
    upstreams: dict[str, Upstream],
    clients: list[genai.Client],
    ingress: str,
    upstream_name: str,
    stream: bool,
    scenario: str,
) -> None:
    upstream = upstreams[upstream_name]
    customer = await customer_for(world, upstream, scenario)
    before = await wallet(customer)

    if scenario == "error":
        with pytest.raises(Exception) as refused:
            await ask(world, clients, ingress, customer, scenario, stream)
        assert refused_status(refused.value) == 400
        assert (await wallet(customer))["quota"] == before["quota"]
        return

    answer = await ask(world, clients, ingress, customer, scenario, stream)

    if scenario == "tools":
        assert answer.calls == upstream.calls
        assert answer.text == upstream.tool_text
        assert answer.stop == "tool"
    else:
        assert answer.text == upstream.reply
        assert answer.calls == []
        assert answer.stop == ("max" if scenario == "max" else "end")
    assert answer.usage == USAGE
    if scenario == "image":
        assert PNG_B64 in json.dumps(sent_to(upstream, customer))
    [log] = await settled_logs(customer, 1)
    assert (log["prompt_tokens"], log["completion_tokens"]) == USAGE[:2]
    assert before["quota"] - (await wallet(customer))["quota"] == log["quota"] > 0
