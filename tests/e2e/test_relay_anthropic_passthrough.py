"""End to end: the `anthropic` SDK (what Claude Code uses) over an Anthropic channel (type
14). Its Messages body reaches Anthropic as it came (cache_control, thinking, anthropic-beta
flags) and Anthropic's answer reaches it as Anthropic sent it (thinking signatures, ids),
streamed or not; the charge is read from the same answer, once."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes.anthropic_upstream import REPLY, THOUGHT, FakeAnthropic
from tests.support.relay_kit import charged_once, customer_on
from tests.support.relay_kit import world as world
from tests.support.world import Customer, World, expected_charge, wallet

pytestmark = pytest.mark.e2e
CLAUDE = 14
CACHED_SYSTEM: Any = [
    {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
]
THINKING: Any = {"type": "enabled", "budget_tokens": 2048}


@pytest.fixture(scope="module")
def claude_fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


async def on_claude(world: World, fake: FakeAnthropic, behaviour: str, **fields: Any) -> Customer:
    model = f"{behaviour}{uuid.uuid4().hex[:8]}"
    key = "sk-ant-" + uuid.uuid4().hex
    return await customer_on(world, model, base_url=fake.url, type_=CLAUDE, key=key, **fields)


@pytest.fixture
async def client(world: World) -> AsyncIterator[anthropic.AsyncAnthropic]:
    made = anthropic.AsyncAnthropic(api_key="unset", base_url=world.relay_url, max_retries=0)
    try:
        yield made
    finally:
        await made.close()


def sent(fake: FakeAnthropic, model: str) -> Any:
    [request] = [r for r in fake.requests if r.body.get("model") == model]
    return request


async def test_the_body_and_the_answer_pass_through_unchanged(
    world: World, claude_fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    customer = await on_claude(world, claude_fake, "thinking")
    before = await wallet(customer)
    claude_fake.cache_read, claude_fake.cache_creation = 20, 7
    try:
        message = await client.with_options(api_key=customer.key).messages.create(
            model=customer.model,
            max_tokens=4096,
            system=CACHED_SYSTEM,
            thinking=THINKING,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
        )
    finally:
        claude_fake.cache_read = claude_fake.cache_creation = 0

    request = sent(claude_fake, customer.model)
    assert request.body == {
        "model": customer.model,
        "max_tokens": 4096,
        "system": CACHED_SYSTEM,
        "thinking": THINKING,
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert request.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert request.headers["x-api-key"].startswith("sk-ant-")
    assert message.id == "msg_fake"  # Anthropic's own answer
    thinking = message.content[0]
    assert thinking.type == "thinking"
    assert (thinking.thinking, thinking.signature) == (THOUGHT, "sig")
    assert message.content[1].type == "text" and message.content[1].text == REPLY
    assert message.usage.cache_read_input_tokens == 20
    assert message.usage.cache_creation_input_tokens == 7
    log = await charged_once(customer, before)
    assert (log["prompt_tokens"], log["completion_tokens"]) == (30, 5)


async def test_a_stream_passes_through_with_its_signatures(
    world: World, claude_fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    customer = await on_claude(world, claude_fake, "thinking")
    before = await wallet(customer)

    kinds: list[str] = []
    async with client.with_options(api_key=customer.key).messages.stream(
        model=customer.model,
        max_tokens=4096,
        thinking=THINKING,
        messages=[{"role": "user", "content": "hi"}],
    ) as stream:
        async for event in stream:
            kinds.append(event.type)
        final = await stream.get_final_message()

    assert sent(claude_fake, customer.model).body["stream"] is True
    assert final.id == "msg_fake"
    thinking = final.content[0]
    assert thinking.type == "thinking" and thinking.signature == "sig"  # conversion drops it
    assert "signature" in kinds
    assert final.content[1].type == "text" and final.content[1].text == REPLY
    assert (final.usage.input_tokens, final.usage.output_tokens) == (10, 5)
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 5)


async def test_the_events_reach_the_client_byte_for_byte(
    world: World, claude_fake: FakeAnthropic
) -> None:
    customer = await on_claude(world, claude_fake, "tools")
    body = {
        "model": customer.model,
        "max_tokens": 500,
        "stream": True,
        "messages": [{"role": "user", "content": "weather?"}],
    }

    async with httpx.AsyncClient(timeout=30) as http:
        relayed = await http.post(
            f"{world.relay_url}/v1/messages",
            json=body,
            headers={"x-api-key": customer.key, "anthropic-version": "2023-06-01"},
        )
        direct = await http.post(
            f"{claude_fake.url}/v1/messages",
            json=body,
            headers={"x-api-key": "sk-ant-direct", "anthropic-version": "2023-06-01"},
        )

    assert relayed.status_code == 200
    assert relayed.headers["content-type"].startswith("text/event-stream")
    assert relayed.text == direct.text


async def test_a_channel_system_prompt_still_comes_first(
    world: World, claude_fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    customer = await on_claude(world, claude_fake, "plain", system_prompt="Answer in French.")

    await client.with_options(api_key=customer.key).messages.create(
        model=customer.model,
        max_tokens=100,
        system=CACHED_SYSTEM,
        messages=[{"role": "user", "content": "hi"}],
    )

    assert sent(claude_fake, customer.model).body["system"] == [
        {"type": "text", "text": "Answer in French."},
        *CACHED_SYSTEM,
    ]


async def test_an_error_event_mid_stream_reaches_the_client_and_the_output_is_charged(
    world: World, claude_fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    customer = await on_claude(world, claude_fake, "midstream-error")
    before = await wallet(customer)

    with pytest.raises(anthropic.APIStatusError) as broken:
        async with client.with_options(api_key=customer.key).messages.stream(
            model=customer.model, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            async for _event in stream:
                pass

    assert "Internal server error" in str(broken.value)
    log = await charged_once(customer, before)  # the text relayed before the error, counted
    assert log["completion_tokens"] >= 1


async def test_an_anthropic_error_before_any_output_is_answered_in_anthropic_shape(
    world: World, claude_fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    customer = await on_claude(world, claude_fake, "fail-429-")
    before = await wallet(customer)

    with pytest.raises(anthropic.RateLimitError):
        await client.with_options(api_key=customer.key).messages.create(
            model=customer.model, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(anthropic.RateLimitError):
        async with client.with_options(api_key=customer.key).messages.stream(
            model=customer.model, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            await stream.get_final_message()

    assert (await wallet(customer))["quota"] == before["quota"]
    assert json.loads(sent_bodies(claude_fake, customer.model)[0])["max_tokens"] == 100


def sent_bodies(fake: FakeAnthropic, model: str) -> list[str]:
    return [json.dumps(r.body) for r in fake.requests if r.body.get("model") == model]
