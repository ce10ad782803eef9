"""End to end: AWS Claude (type 33) channels. The official `openai` SDK through the relay to a
fake Bedrock runtime that checks every SigV4 signature with botocore: InvokeModel text, the
binary event stream with parallel tool calls, Claude names as cross-region model ids, AWS error
bodies and exception frames as OpenAI errors."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.anthropic_upstream import REPLY, TOOL_USES
from tests.fakes.bedrock_upstream import FakeBedrock
from tests.support.relay_kit import PNG_1x1, charged_once, customer_on
from tests.support.relay_kit import world as world
from tests.support.world import Customer, World, expected_charge, price_model, sdk, wallet

pytestmark = pytest.mark.e2e
HI: Any = [{"role": "user", "content": "hi"}]
AWS = 33
ACCESS, SECRET = "AKIAFAKEEXAMPLE", "fake/secret+key"
TOOLS: Any = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
    for name in ("get_weather", "get_time")
]


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeBedrock]:
    with FakeBedrock(secrets={ACCESS: SECRET}) as fake:
        yield fake


def named(behaviour: str) -> str:
    """A Claude model id (InvokeModel) the fake reads `behaviour` from."""
    return f"anthropic.{behaviour}{uuid.uuid4().hex[:8]}"


async def customer_of(
    world: World, fake: FakeBedrock, model: str, *, key: str = "", **fields: Any
) -> Customer:
    key = key or f"{ACCESS}|{SECRET}|us-east-1"
    return await customer_on(world, model, base_url=fake.url, type_=AWS, key=key, **fields)


async def test_invoke_model_is_signed_answered_as_a_completion_and_charged_once(
    world: World, bedrock: FakeBedrock
) -> None:
    customer = await customer_of(world, bedrock, named("plain"))
    before = await wallet(customer)

    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=[{"role": "system", "content": "Be brief."}, *HI]
    )

    assert reply.choices[0].message.content == REPLY
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (10, 5)
    request = bedrock.last
    assert request.path == f"/model/{customer.model}/invoke"
    assert request.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS}/")
    assert SECRET not in json.dumps(request.headers)
    assert request.body["system"] == [{"type": "text", "text": "Be brief."}]
    assert request.body["max_tokens"] == 8192
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 5)


async def test_event_stream_with_parallel_tool_calls(world: World, bedrock: FakeBedrock) -> None:
    customer = await customer_of(world, bedrock, named("tools"))
    before = await wallet(customer)
    stream = await sdk(world, customer.key).chat.completions.create(
        model=customer.model,
        messages=HI,
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    usage = None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                if call.function:
                    slot["name"] = call.function.name or slot["name"]
                    slot["arguments"] += call.function.arguments or ""
    got = [(c["id"], c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())]
    assert got == [(u["id"], u["name"], u["input"]) for u in TOOL_USES]
    assert finish == "tool_calls"
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (10, 5)
    assert bedrock.last.path.endswith("/invoke-with-response-stream")
    log = await charged_once(customer, before)
    assert log["is_stream"] is True and log["quota"] == expected_charge(10, 5)


async def test_claude_names_become_cross_region_model_ids(
    world: World, bedrock: FakeBedrock
) -> None:
    upstream = "claude-3-7-sonnet-20250219"
    await price_model(world.root, upstream)
    model = named("c")
    customer = await customer_of(world, bedrock, model, model_mapping=json.dumps({model: upstream}))
    await sdk(world, customer.key).chat.completions.create(model=model, messages=HI)
    assert bedrock.last.path == "/model/us.anthropic.claude-3-7-sonnet-20250219-v1:0/invoke"


async def test_a_wrong_secret_is_aws_s_signature_error(world: World, bedrock: FakeBedrock) -> None:
    customer = await customer_of(
        world, bedrock, named("plain"), key=f"{ACCESS}|not-the-secret|us-east-1"
    )
    with pytest.raises(openai.PermissionDeniedError, match="signature we calculated"):
        await sdk(world, customer.key).chat.completions.create(model=customer.model, messages=HI)


async def test_a_throttling_exception_frame_is_a_429(world: World, bedrock: FakeBedrock) -> None:
    customer = await customer_of(world, bedrock, named("throttled"))
    before = await wallet(customer)
    with pytest.raises(openai.RateLimitError):
        await sdk(world, customer.key).chat.completions.create(
            model=customer.model, messages=HI, stream=True
        )
    assert (await wallet(customer))["quota"] == before["quota"]


async def test_aws_error_bodies_keep_their_status_and_message(
    world: World, bedrock: FakeBedrock
) -> None:
    customer = await customer_of(world, bedrock, f"anthropic.fail-400-{uuid.uuid4().hex[:6]}")
    with pytest.raises(openai.BadRequestError, match="fake failure 400"):
        await sdk(world, customer.key).chat.completions.create(model=customer.model, messages=HI)


async def test_a_key_not_in_ak_sk_region_form_is_a_clear_error(
    world: World, bedrock: FakeBedrock
) -> None:
    customer = await customer_of(world, bedrock, named("plain"), key="just-one-part")
    with pytest.raises(openai.APIStatusError, match="AK\\|SK\\|region") as caught:
        await sdk(world, customer.key).chat.completions.create(model=customer.model, messages=HI)
    assert caught.value.status_code == 502


async def test_other_models_speak_the_converse_api(world: World, bedrock: FakeBedrock) -> None:
    customer = await customer_of(world, bedrock, f"meta.llama3-plain{uuid.uuid4().hex[:6]}-v1:0")
    before = await wallet(customer)
    image = "data:image/png;base64," + base64.b64encode(PNG_1x1).decode()

    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            },
        ],
        max_tokens=200,
        temperature=0.2,
    )

    assert reply.choices[0].message.content == REPLY
    assert reply.choices[0].finish_reason == "stop"
    request = bedrock.last
    assert request.path == f"/model/{customer.model}/converse"
    assert request.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS}/")
    assert request.body == {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "what is this?"},
                    {
                        "image": {
                            "format": "png",
                            "source": {"bytes": base64.b64encode(PNG_1x1).decode()},
                        }
                    },
                ],
            }
        ],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 200, "temperature": 0.2},
    }
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 5)

    with pytest.raises(openai.BadRequestError):  # Converse takes image bytes, not URLs
        await sdk(world, customer.key).chat.completions.create(
            model=customer.model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                    ],
                }
            ],
        )


async def test_converse_streams_parallel_tool_calls_and_takes_their_results(
    world: World, bedrock: FakeBedrock
) -> None:
    customer = await customer_of(world, bedrock, f"amazon.nova-tools{uuid.uuid4().hex[:6]}")
    before = await wallet(customer)
    client = sdk(world, customer.key)

    stream = await client.chat.completions.create(
        model=customer.model,
        messages=HI,
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    calls: dict[int, list[str]] = {}
    finish, usage = None, None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or ():
                entry = calls.setdefault(call.index, ["", "", ""])
                entry[0] += call.id or ""
                entry[1] += call.function.name or "" if call.function else ""
                entry[2] += call.function.arguments or "" if call.function else ""

    uses: Any = TOOL_USES
    assert [(c[0], c[1], json.loads(c[2])) for c in calls.values()] == [
        (use["id"], use["name"], use["input"]) for use in uses
    ]
    assert finish == "tool_calls"
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (10, 5)
    await charged_once(customer, before)

    history: Any = [
        *HI,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": use["id"],
                    "type": "function",
                    "function": {"name": use["name"], "arguments": json.dumps(use["input"])},
                }
                for use in uses
            ],
        },
        *[
            {"role": "tool", "tool_call_id": use["id"], "content": f"result {i}"}
            for i, use in enumerate(uses)
        ],
    ]
    await client.chat.completions.create(
        model=customer.model,
        messages=history,
        tools=TOOLS,
    )
    turns = bedrock.last.body["messages"]
    assert [turn["role"] for turn in turns] == ["user", "assistant", "user"]
    ids = [use["id"] for use in uses]
    assert [block["toolUse"]["toolUseId"] for block in turns[1]["content"]] == ids
    assert [block["toolResult"]["toolUseId"] for block in turns[2]["content"]] == ids
    assert bedrock.last.body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
