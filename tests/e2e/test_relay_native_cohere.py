"""Cohere (34) channels through the relay, against a fake speaking Cohere's v1 wire format:
the conversation arrives as message / chat_history / preamble, answers and JSON-lines streams
come back as OpenAI chat, usage from billed units is charged, and what Cohere cannot serve
is refused without a charge."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fakes.cohere_upstream import REPLY, FakeCohere
from tests.support.relay_kit import charged_once
from tests.support.relay_kit import world as world
from tests.support.world import (
    Customer,
    World,
    customer_on,
    expected_charge,
    sdk,
    settled_logs,
    wallet,
)

pytestmark = pytest.mark.e2e

COHERE = 34
CONVERSATION: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "first answer"},
    {"role": "user", "content": [{"type": "text", "text": "second question"}]},
]


@pytest.fixture(scope="module")
def cohere() -> Iterator[FakeCohere]:
    with FakeCohere() as fake:
        yield fake


@pytest.fixture
async def customer(world: World, cohere: FakeCohere) -> Customer:
    cohere.finish_reason, cohere.fail_status = "COMPLETE", 0
    return await customer_on(world, COHERE, cohere.url, key="co-key", prefix="cohere-")


async def test_a_chat_becomes_cohere_v1_and_its_billed_units_are_charged(
    world: World, cohere: FakeCohere, customer: Customer
) -> None:
    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=CONVERSATION, max_tokens=50, temperature=0.3, top_p=0.9
    )
    assert reply.choices[0].message.content == "".join(REPLY)
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (40, 5)
    sent = cohere.last
    assert sent.path == "/v1/chat"
    assert sent.body["message"] == "second question"
    assert sent.body["preamble"] == "Be brief."
    assert sent.body["chat_history"] == [
        {"role": "USER", "message": "first question"},
        {"role": "CHATBOT", "message": "first answer"},
    ]
    assert (sent.body["max_tokens"], sent.body["temperature"], sent.body["p"]) == (50, 0.3, 0.9)
    assert "safety_mode" not in sent.body
    [log] = await settled_logs(customer, 1)
    assert log["quota"] == expected_charge(40, 5)


async def test_a_cohere_stream_arrives_as_openai_chunks_with_usage(
    world: World, cohere: FakeCohere, customer: Customer
) -> None:
    cohere.finish_reason = "MAX_TOKENS"
    stream = await sdk(world, customer.key).chat.completions.create(
        model=customer.model,
        messages=CONVERSATION,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    assert text == "".join(REPLY)
    assert finish == "length"  # Cohere's MAX_TOKENS in OpenAI's word
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (40, 5)
    assert cohere.last.body["stream"] is True
    [log] = await settled_logs(customer, 1)
    assert log["quota"] == expected_charge(40, 5)


async def test_rerank_passes_through_to_cohere(
    world: World, cohere: FakeCohere, customer: Customer
) -> None:
    async with httpx.AsyncClient(base_url=world.relay_url, timeout=10.0) as client:
        ranked = await client.post(
            "/v1/rerank",
            json={"model": customer.model, "query": "q", "documents": ["a", "b"], "top_n": 2},
            headers={"Authorization": f"Bearer sk-{customer.key}"},
        )
    assert ranked.status_code == 200, ranked.text
    assert [r["index"] for r in ranked.json()["results"]] == [0, 1]
    assert cohere.last.path == "/v1/rerank" and cohere.last.body["top_n"] == 2


async def test_embeddings_go_to_cohere_embed_and_are_billed_by_its_units(
    world: World, cohere: FakeCohere, customer: Customer
) -> None:
    before = await wallet(customer)

    answer = await sdk(world, customer.key).embeddings.create(
        model=customer.model, input=["one two", "three four five"]
    )

    assert [item.embedding for item in answer.data] == [[0.25, -0.5], [0.25, -0.5]]
    assert answer.usage.prompt_tokens == 5
    assert cohere.last.path == "/v1/embed"
    assert cohere.last.body == {
        "model": customer.model,
        "texts": ["one two", "three four five"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    log = await charged_once(customer, before)
    assert log["prompt_tokens"] == 5


async def test_tools_other_endpoints_and_upstream_errors_cost_nothing(
    world: World, cohere: FakeCohere, customer: Customer
) -> None:
    before = await wallet(customer)
    client = sdk(world, customer.key)
    tool: openai.types.chat.ChatCompletionToolParam = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
    with pytest.raises(openai.BadRequestError) as tools:
        await client.chat.completions.create(
            model=customer.model, messages=CONVERSATION, tools=[tool]
        )
    assert "tools are not supported" in tools.value.message
    with pytest.raises(openai.BadRequestError) as moderations:
        await client.moderations.create(model=customer.model, input="x")
    assert moderations.value.code == "unsupported_endpoint"
    cohere.fail_status = 400
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model=customer.model, messages=CONVERSATION)
    assert "upstream refused with 400" in refused.value.message  # Cohere's own message
    assert (await wallet(customer))["quota"] == before["quota"]
