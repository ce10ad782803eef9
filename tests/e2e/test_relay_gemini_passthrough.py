"""End to end: the `google-genai` SDK over a Gemini channel (type 24). Its generateContent
body reaches Gemini as it came (plus the operator's safety settings when it has none) and
Gemini's answer reaches it as Gemini sent it, streamed (SSE) or not; the charge is read from
the same usageMetadata, once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini_upstream import REPLY, THOUGHT, FakeGemini
from tests.support.genai_kit import client
from tests.support.genai_kit import clients as clients
from tests.support.relay_kit import charged_once, customer_on
from tests.support.relay_kit import world as world
from tests.support.world import Customer, World, expected_charge, wallet

pytestmark = pytest.mark.e2e
GEMINI = 24


@pytest.fixture(scope="module")
def gemini_fake() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


async def on_gemini(world: World, fake: FakeGemini, behaviour: str, **fields: Any) -> Customer:
    model = f"{behaviour}{uuid.uuid4().hex[:8]}"
    key = "gm-" + uuid.uuid4().hex
    return await customer_on(world, model, base_url=fake.url, type_=GEMINI, key=key, **fields)


def sent(fake: FakeGemini, model: str) -> Any:
    return [r for r in fake.requests if f"/models/{model}:" in r.path]


async def test_the_body_and_the_answer_pass_through(
    world: World, gemini_fake: FakeGemini, clients: list[genai.Client]
) -> None:
    customer = await on_gemini(world, gemini_fake, "thinking")
    before = await wallet(customer)
    config = types.GenerateContentConfig(
        system_instruction="Be brief.",
        temperature=0.2,
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=512),
    )

    answer = await client(world, clients, customer.key).aio.models.generate_content(
        model=customer.model, contents="hi", config=config
    )

    [request] = sent(gemini_fake, customer.model)
    assert request.path.endswith(f"/models/{customer.model}:generateContent")
    body = request.body
    assert body["contents"] == [{"parts": [{"text": "hi"}], "role": "user"}]
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}], "role": "user"}
    # as the SDK spelt it (it writes this object's keys in snake_case, which Gemini reads)
    assert sorted(body["generationConfig"]["thinkingConfig"].values()) == [True, 512]
    assert {s["threshold"] for s in body["safetySettings"]} == {"BLOCK_NONE"}  # the operator's
    assert answer.response_id == "resp_fake"  # Gemini's own answer
    parts = answer.candidates[0].content.parts  # type: ignore[index,union-attr]
    assert [(p.text, p.thought) for p in parts] == [(THOUGHT, True), (REPLY, None)]  # type: ignore[union-attr]
    assert answer.usage_metadata is not None
    assert answer.usage_metadata.thoughts_token_count == 3
    log = await charged_once(customer, before)
    assert (log["prompt_tokens"], log["completion_tokens"]) == (10, 8)


async def test_a_stream_passes_through_as_gemini_sent_it(
    world: World, gemini_fake: FakeGemini, clients: list[genai.Client]
) -> None:
    customer = await on_gemini(world, gemini_fake, "plain", system_prompt="Answer in French.")
    before = await wallet(customer)

    pieces: list[str] = []
    stream = await client(world, clients, customer.key).aio.models.generate_content_stream(
        model=customer.model, contents="hi"
    )
    async for chunk in stream:
        pieces.append(chunk.text or "")
        assert chunk.model_version == customer.model  # Gemini's chunks, not rebuilt ones

    assert "".join(pieces) == REPLY
    assert len(pieces) > 1
    [request] = sent(gemini_fake, customer.model)
    assert "streamGenerateContent" in request.path and request.query == "alt=sse"
    assert request.body["systemInstruction"] == {"parts": [{"text": "Answer in French."}]}
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 5)


async def test_a_gemini_error_reaches_the_client_in_google_shape_and_costs_nothing(
    world: World, gemini_fake: FakeGemini, clients: list[genai.Client]
) -> None:
    customer = await on_gemini(world, gemini_fake, "fail-400-")
    before = await wallet(customer)

    with pytest.raises(errors.ClientError) as refused:
        await client(world, clients, customer.key).aio.models.generate_content(
            model=customer.model, contents="hi"
        )

    assert refused.value.code == 400
    assert "fake failure 400" in str(refused.value.message)
    assert (await wallet(customer))["quota"] == before["quota"]
