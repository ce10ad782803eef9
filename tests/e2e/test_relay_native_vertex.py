"""End to end: Vertex AI (type 41) channels. The official `openai` SDK through the relay to a
fake Vertex AI whose token endpoint checks the service account's signed JWT: Gemini and Claude
models, plain and streamed, the access token cached across requests, regions per model, and a
refused service account as an OpenAI error."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.anthropic_upstream import REPLY as CLAUDE_REPLY
from tests.fakes.anthropic_upstream import TOOL_USES
from tests.fakes.gemini_upstream import REPLY as GEMINI_REPLY
from tests.fakes.vertex_upstream import PROJECT, FakeVertex
from tests.support.relay_kit import apply, charged_once, customer_on
from tests.support.relay_kit import options as options
from tests.support.relay_kit import world as world
from tests.support.world import (
    Customer,
    World,
    eventually,
    expected_charge,
    sdk,
    settled_logs,
    wallet,
)

pytestmark = pytest.mark.e2e
HI: Any = [{"role": "user", "content": "hi"}]
VERTEX = 41
REGIONS = json.dumps({"default": "us-central1"})


@pytest.fixture(scope="module")
def vertex() -> Iterator[FakeVertex]:
    with FakeVertex() as fake:
        yield fake


async def customer_of(
    world: World, fake: FakeVertex, model: str, *, key: str = "", other: str = REGIONS
) -> Customer:
    return await customer_on(
        world,
        model,
        base_url=fake.url,
        type_=VERTEX,
        key=key or fake.service_account(),
        other=other,
    )


async def test_gemini_on_vertex_with_a_cached_access_token(
    world: World, vertex: FakeVertex
) -> None:
    model = f"gem{uuid.uuid4().hex[:8]}"
    customer = await customer_of(world, vertex, model)
    before = await wallet(customer)
    issued = len(vertex.tokens_issued)

    reply = await sdk(world, customer.key).chat.completions.create(model=model, messages=HI)
    stream = await sdk(world, customer.key).chat.completions.create(
        model=model, messages=HI, stream=True
    )
    streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert reply.choices[0].message.content == GEMINI_REPLY and streamed == GEMINI_REPLY
    paths = [r.path for r in vertex.requests if model in r.path]
    base = f"/v1/projects/{PROJECT}/locations/us-central1/publishers/google/models/{model}"
    assert paths == [f"{base}:generateContent", f"{base}:streamGenerateContent"]
    assert len(vertex.tokens_issued) <= issued + 1  # one token serves both requests
    assert vertex.last.headers["authorization"] == f"Bearer {vertex.tokens_issued[-1]}"
    await charged_once_each(customer, before, 2)


async def charged_once_each(customer: Customer, before: dict[str, Any], count: int) -> None:
    logs = await settled_logs(customer, count)
    after = await wallet(customer)
    assert before["quota"] - after["quota"] == sum(log["quota"] for log in logs)
    assert all(log["quota"] == expected_charge(10, 5) for log in logs)


async def test_claude_on_vertex_in_the_model_s_region(world: World, vertex: FakeVertex) -> None:
    model = f"claude-tools{uuid.uuid4().hex[:6]}"
    other = json.dumps({"default": "us-central1", model: "us-east5"})
    customer = await customer_of(world, vertex, model, other=other)
    before = await wallet(customer)

    reply = await sdk(world, customer.key).chat.completions.create(
        model=model,
        messages=HI,
        tools=[{"type": "function", "function": {"name": "get_weather"}}],
    )

    calls = reply.choices[0].message.tool_calls or []
    got = [(c.id, c.function.name) for c in calls if c.type == "function"]
    assert got == [(u["id"], u["name"]) for u in TOOL_USES]
    request = vertex.last
    assert request.path == (
        f"/v1/projects/{PROJECT}/locations/us-east5/publishers/anthropic/models/{model}:rawPredict"
    )
    assert request.body["anthropic_version"] == "vertex-2023-10-16"
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 5)


async def test_claude_stream_on_vertex(world: World, vertex: FakeVertex) -> None:
    model = f"claude{uuid.uuid4().hex[:6]}"
    customer = await customer_of(world, vertex, model)
    stream = await sdk(world, customer.key).chat.completions.create(
        model=model, messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == CLAUDE_REPLY
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert vertex.last.path.endswith(f"/publishers/anthropic/models/{model}:streamRawPredict")
    assert vertex.last.body["stream"] is True


async def test_a_service_account_google_refuses_is_a_401_and_disables_the_channel(
    world: World, vertex: FakeVertex, options: dict[str, str]
) -> None:
    await apply(world, options, {"AutomaticDisableChannelEnabled": "true"})
    other = FakeVertex()  # another key: its JWT does not verify against this fake's key
    account = json.loads(other.service_account())
    account["token_uri"] = f"{vertex.url}/token"
    customer = await customer_of(
        world, vertex, f"gem{uuid.uuid4().hex[:8]}", key=json.dumps(account)
    )
    with pytest.raises(openai.AuthenticationError, match="service account was refused"):
        await sdk(world, customer.key).chat.completions.create(model=customer.model, messages=HI)

    async def disabled() -> bool | None:
        channel = await world.root.call("GET", f"/api/channel/{customer.channel_id}")
        statuses = {key["status"] for key in channel["keys"]} | {channel["status"]}
        return True if statuses - {1} else None

    assert await eventually(disabled)


async def test_embeddings_on_vertex_are_a_predict_call_billed_by_its_token_counts(
    world: World, vertex: FakeVertex
) -> None:
    model = f"text-embedding-{uuid.uuid4().hex[:6]}"
    customer = await customer_of(world, vertex, model)
    before = await wallet(customer)

    answer = await sdk(world, customer.key).embeddings.create(
        model=model, input=["two words", "and three more"], dimensions=3
    )

    assert [item.embedding for item in answer.data] == [[0.1, 0.2, 0.3]] * 2
    assert answer.usage.prompt_tokens == 5
    request = vertex.last
    base = f"/v1/projects/{PROJECT}/locations/us-central1/publishers/google/models/{model}"
    assert request.path == f"{base}:predict"
    assert request.body == {
        "instances": [{"content": "two words"}, {"content": "and three more"}],
        "parameters": {"outputDimensionality": 3},
    }
    [log] = await settled_logs(customer, 1)
    assert log["prompt_tokens"] == 5
    assert before["quota"] - (await wallet(customer))["quota"] == log["quota"]
