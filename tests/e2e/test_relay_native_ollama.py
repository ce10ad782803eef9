"""End to end: Ollama (type 4) channels on Ollama's native API. The official `openai` SDK
through the relay to a fake Ollama: chat on /api/chat (options, images, tools, streams of
newline-delimited JSON), embeddings on /api/embed, Ollama's errors; each answer charged by
Ollama's own counts, once."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.ollama_upstream import REPLY, FakeOllama
from tests.support.relay_kit import PNG_1x1, charged_once, customer_on
from tests.support.relay_kit import world as world
from tests.support.world import Customer, World, expected_charge, sdk, wallet

pytestmark = pytest.mark.e2e
OLLAMA = 4
HI: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        yield fake


async def on_ollama(world: World, fake: FakeOllama, behaviour: str = "llama") -> Customer:
    model = f"{behaviour}-{uuid.uuid4().hex[:8]}"
    return await customer_on(world, model, base_url=fake.url, type_=OLLAMA, key="ollama")


def sent(fake: FakeOllama, customer: Customer) -> Any:
    return [r for r in fake.requests if r.body.get("model") == customer.model][-1]


async def test_chat_is_native_and_billed_by_ollama_s_counts(
    world: World, ollama: FakeOllama
) -> None:
    customer = await on_ollama(world, ollama)
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
        max_tokens=64,
        temperature=0.1,
        stop=["END"],
    )

    assert reply.choices[0].message.content == REPLY
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (11, 4)
    request = sent(ollama, customer)
    assert request.path == "/api/chat"
    assert request.body == {
        "model": customer.model,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": "what is this?",
                "images": [base64.b64encode(PNG_1x1).decode()],
            },
        ],
        "stream": False,
        "options": {"temperature": 0.1, "num_predict": 64, "stop": ["END"]},
    }
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(11, 4)


async def test_streams_and_tool_calls(world: World, ollama: FakeOllama) -> None:
    customer = await on_ollama(world, ollama)
    before = await wallet(customer)
    stream = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    usage = [c.usage for c in chunks if c.usage is not None]
    assert [(u.prompt_tokens, u.completion_tokens) for u in usage] == [(11, 4)]
    assert sent(ollama, customer).body["stream"] is True
    await charged_once(customer, before)

    tools_customer = await on_ollama(world, ollama, "tools")
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    reply = await sdk(world, tools_customer.key).chat.completions.create(
        model=tools_customer.model, messages=HI, tools=tools
    )
    calls = reply.choices[0].message.tool_calls or []
    assert [
        (c.function.name, json.loads(c.function.arguments)) for c in calls if c.type == "function"
    ] == [("get_weather", {"city": "Lyon"})]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert sent(ollama, tools_customer).body["tools"] == tools


async def test_embeddings_and_errors(world: World, ollama: FakeOllama) -> None:
    customer = await on_ollama(world, ollama)
    answer = await sdk(world, customer.key).embeddings.create(
        model=customer.model, input=["a", "b"]
    )
    assert [item.embedding for item in answer.data] == [[0.5, 0.5], [0.5, 0.5]]
    assert sent(ollama, customer).path == "/api/embed"

    missing = await on_ollama(world, ollama, "missing")
    before = await wallet(missing)
    with pytest.raises(openai.NotFoundError) as gone:
        await sdk(world, missing.key).chat.completions.create(model=missing.model, messages=HI)
    assert "not found" in gone.value.message
    with pytest.raises(openai.BadRequestError) as linked:
        await sdk(world, customer.key).chat.completions.create(
            model=customer.model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
                    ],
                }
            ],
        )
    assert linked.value.code == "unsupported_image"
    assert (await wallet(missing))["quota"] == before["quota"]
