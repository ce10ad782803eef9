"""End to end: Tencent Hunyuan (type 23) channels. The official `openai` SDK through the relay
to a fake speaking the Tencent Cloud API, which checks each request's TC3-HMAC-SHA256
signature: text, streams, parallel tool calls, images, Tencent's errors inside a 200 turned into
the right failures; each answer charged once."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.tencent_upstream import CALLS, REPLY, FakeHunyuan
from tests.support.relay_kit import PNG_1x1, charged_once, customer_on
from tests.support.relay_kit import world as world
from tests.support.world import Customer, World, expected_charge, sdk, wallet

pytestmark = pytest.mark.e2e
TENCENT = 23
TOOLS: Any = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]


@pytest.fixture(scope="module")
def hunyuan() -> Iterator[FakeHunyuan]:
    with FakeHunyuan() as fake:
        yield fake


async def on_hunyuan(
    world: World, fake: FakeHunyuan, behaviour: str = "hunyuan", *, known: bool = True
) -> Customer:
    """A key whose model is served by one Hunyuan channel with its own secret pair."""
    secret_id, secret_key = f"AKID{uuid.uuid4().hex}", uuid.uuid4().hex
    if known:
        fake.secrets[secret_id] = secret_key
    model = f"{behaviour}-{uuid.uuid4().hex[:8]}"
    key = f"1250000000|{secret_id}|{secret_key}"
    return await customer_on(world, model, base_url=fake.url, type_=TENCENT, key=key)


def sent(fake: FakeHunyuan, customer: Customer) -> Any:
    return [r for r in fake.requests if r.body.get("Model") == customer.model][-1]


async def test_chat_is_a_signed_chat_completions_call_charged_once(
    world: World, hunyuan: FakeHunyuan
) -> None:
    customer = await on_hunyuan(world, hunyuan)
    before = await wallet(customer)

    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        temperature=0.5,
    )

    assert reply.choices[0].message.content == REPLY
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (8, 7)
    request = sent(hunyuan, customer)
    assert request.headers["x-tc-action"] == "ChatCompletions"
    assert request.headers["authorization"].startswith("TC3-HMAC-SHA256 Credential=AKID")
    secret_key = customer_secret(hunyuan, request)
    assert secret_key not in json.dumps(request.headers)  # the secret key never travels
    assert request.body == {
        "Model": customer.model,
        "Messages": [
            {"Role": "system", "Content": "Be brief."},
            {"Role": "user", "Content": "hi"},
        ],
        "Stream": False,
        "Temperature": 0.5,
    }
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(8, 7)


def customer_secret(fake: FakeHunyuan, request: Any) -> str:
    credential = request.headers["authorization"].split("Credential=")[1]
    return fake.secrets[credential.split("/")[0]]


async def test_a_stream_is_relayed_and_charged_by_its_last_usage(
    world: World, hunyuan: FakeHunyuan
) -> None:
    customer = await on_hunyuan(world, hunyuan)
    before = await wallet(customer)

    stream = await sdk(world, customer.key).chat.completions.create(
        model=customer.model,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    usage = [c.usage for c in chunks if c.usage is not None]
    assert [(u.prompt_tokens, u.completion_tokens) for u in usage] == [(8, 7)]
    assert sent(hunyuan, customer).body["Stream"] is True
    await charged_once(customer, before)


async def test_parallel_tool_calls_and_images_carry_over(
    world: World, hunyuan: FakeHunyuan
) -> None:
    customer = await on_hunyuan(world, hunyuan, "tools")
    client = sdk(world, customer.key)
    image = "data:image/png;base64," + base64.b64encode(PNG_1x1).decode()

    reply = await client.chat.completions.create(
        model=customer.model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "where is this?"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            }
        ],
        tools=TOOLS,
    )
    stream = await client.chat.completions.create(
        model=customer.model,
        messages=[{"role": "user", "content": "weather?"}],
        tools=TOOLS,
        stream=True,
    )
    streamed: dict[int, list[str]] = {}
    async for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
            entry = streamed.setdefault(call.index, ["", ""])
            entry[0] += call.function.name or "" if call.function else ""
            entry[1] += call.function.arguments or "" if call.function else ""

    fake_calls: Any = CALLS
    wanted = [(c["Function"]["Name"], c["Function"]["Arguments"]) for c in fake_calls]
    calls = reply.choices[0].message.tool_calls or []
    assert [
        (c.function.name, c.function.arguments) for c in calls if c.type == "function"
    ] == wanted
    assert reply.choices[0].finish_reason == "tool_calls"
    assert [tuple(entry) for entry in streamed.values()] == wanted
    first = next(r for r in hunyuan.requests if r.body.get("Model") == customer.model).body
    assert first["Messages"][0]["Contents"] == [
        {"Type": "text", "Text": "where is this?"},
        {"Type": "image_url", "ImageUrl": {"Url": image}},
    ]
    assert [t["Function"]["Name"] for t in first["Tools"]] == ["get_weather", "get_time"]
    assert first["Tools"][0]["Function"]["Parameters"] == '{"type":"object"}'


async def test_tencent_errors_inside_a_200_fail_the_request_and_cost_nothing(
    world: World, hunyuan: FakeHunyuan
) -> None:
    unknown = await on_hunyuan(world, hunyuan, known=False)
    before = await wallet(unknown)
    with pytest.raises(openai.AuthenticationError) as refused:
        await sdk(world, unknown.key).chat.completions.create(
            model=unknown.model, messages=[{"role": "user", "content": "hi"}]
        )
    assert "SecretId is not found" in refused.value.message

    limited = await on_hunyuan(world, hunyuan, "limit")
    with pytest.raises(openai.RateLimitError):
        await sdk(world, limited.key).chat.completions.create(
            model=limited.model, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert (await wallet(unknown))["quota"] == before["quota"]
