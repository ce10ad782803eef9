"""End to end: whatever usage an upstream reports, a request is charged once and within bounds."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from openai.types.chat import ChatCompletionMessageParam

from services.shared.pricing_rules import audio_ratios, locked_completion_ratio
from tests.support.helpers import create_channel
from tests.support.relay_kit import charged_once
from tests.support.relay_kit import world as world
from tests.support.world import (
    COMPLETION_RATIO,
    MODEL_RATIO,
    World,
    expected_charge,
    new_customer,
    price_model,
    sdk,
    wallet,
)

pytestmark = pytest.mark.e2e
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
CAP = 16
BAD_USAGE = {
    "negative": '{"prompt_tokens": -5, "completion_tokens": -7, "total_tokens": -12}',
    "beyond int64": (
        '{"prompt_tokens": 9223372036854775813, "completion_tokens": 18446744073709551615}'
    ),
    "ten to the 30": '{"prompt_tokens": 1000000000000000000000000000000, "completion_tokens": 5}',
    "fractions": '{"prompt_tokens": 10.6, "completion_tokens": 4.4}',
    "strings": '{"prompt_tokens": "ten", "completion_tokens": "5"}',
    "booleans": '{"prompt_tokens": true, "completion_tokens": false}',
    "nulls": '{"prompt_tokens": null, "completion_tokens": null}',
}


def other_of(log: dict[str, Any]) -> dict[str, Any]:
    other: dict[str, Any] = json.loads(log["other"] or "{}")
    return other


async def chat(world: World, key: str, model: str, *, stream: bool, **extra: Any) -> str:
    """The reply text (stream or not) of one chat request carrying fake-upstream fields."""
    client = sdk(world, key)
    if not stream:
        reply = await client.chat.completions.create(model=model, messages=HI, extra_body=extra)
        return reply.choices[0].message.content or ""
    chunks = await client.chat.completions.create(
        model=model,
        messages=HI,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=extra,
    )
    return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("shape", list(BAD_USAGE))
async def test_bad_usage_is_clamped_flagged_and_charged_once(
    world: World, shape: str, stream: bool
) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)

    text = await chat(
        world, customer.key, customer.model, stream=stream, fake_usage=BAD_USAGE[shape]
    )

    assert text == world.fake.reply_text
    log = await charged_once(customer, before)
    assert other_of(log)["usage_clamped"] is True
    assert log["prompt_tokens"] >= 0 and log["completion_tokens"] >= 0
    assert log["quota"] > 0  # a bad report never makes a request free


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_missing_usage_counts_locally_and_says_so(world: World, stream: bool) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)

    await chat(world, customer.key, customer.model, stream=stream, fake_usage="{}")

    log = await charged_once(customer, before)
    assert other_of(log)["estimated"] is True
    assert log["completion_tokens"] > 0


async def test_completion_beyond_max_tokens_is_billed_at_max_tokens(world: World) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    usage = '{"prompt_tokens": 10, "completion_tokens": 200000}'

    await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI, max_tokens=CAP, extra_body={"fake_usage": usage}
    )

    log = await charged_once(customer, before)
    assert (log["prompt_tokens"], log["completion_tokens"]) == (10, CAP)
    assert log["quota"] == expected_charge(10, CAP)
    assert other_of(log)["usage_clamped"] is True


async def test_stream_past_max_tokens_is_cut_with_length_and_charged_at_the_cap(
    world: World,
) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    body = {
        "model": customer.model,
        "messages": HI,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": CAP,
        "fake_words": 2000,
    }

    async with (
        httpx.AsyncClient(timeout=30.0) as client,
        client.stream(
            "POST",
            world.relay_url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer sk-{customer.key}"},
            json=body,
        ) as reply,
    ):
        assert reply.status_code == 200
        lines = [line async for line in reply.aiter_lines() if line.startswith("data: ")]

    assert lines[-1] == "data: [DONE]" and lines.count("data: [DONE]") == 1
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "length" and "stop" not in finishes
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] == CAP
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert 0 < len(text.split()) < 2000
    log = await charged_once(customer, before)
    assert log["completion_tokens"] == CAP
    assert log["quota"] == expected_charge(log["prompt_tokens"], CAP)


async def test_responses_stream_past_max_output_tokens_ends_with_response_incomplete(
    world: World,
) -> None:
    """The Responses API's stream is cut at the cap with the event OpenAI sends there
    (`response.incomplete`, reason max_output_tokens), which the SDK parses as the last event."""
    customer = await new_customer(world)
    before = await wallet(customer)
    stream = await sdk(world, customer.key).responses.create(
        model=customer.model,
        input="hi",
        stream=True,
        max_output_tokens=CAP,
        extra_body={"fake_words": 2000},
    )
    events = [event async for event in stream]
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.status == "incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.usage is not None and last.response.usage.output_tokens == CAP
    sent = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert last.response.output_text == sent and 0 < len(sent.split()) < 2000
    log = await charged_once(customer, before)
    assert log["completion_tokens"] == CAP


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_audio_tokens_are_billed_at_the_audio_model_s_ratios(
    world: World, stream: bool
) -> None:
    """gpt-4o-audio-preview hears and speaks at 16x the text price (x2 more for speech out):
    its audio tokens reach billing apart from its text tokens (upstream
    `relay/relay-text.go` with the model's AudioRatio and AudioCompletionRatio)."""
    audio_model = "gpt-4o-audio-preview"
    await price_model(world.root, audio_model)
    customer = await new_customer(world)
    await create_channel(
        world.root,
        base_url=world.fake.url,
        models=[customer.model],
        priority=10,
        model_mapping=json.dumps({customer.model: audio_model}),
    )
    await asyncio.sleep(0.3)
    before = await wallet(customer)
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "prompt_tokens_details": {"audio_tokens": 40, "cached_tokens": 0},
        "completion_tokens_details": {"audio_tokens": 30},
    }

    await chat(
        world,
        customer.key,
        customer.model,
        stream=stream,
        fake_usage=json.dumps(usage),
        max_tokens=100,
    )

    log = await charged_once(customer, before)
    audio, audio_out = audio_ratios(audio_model) or (1.0, 1.0)
    assert (audio, audio_out) == (16.0, 2.0)
    completion = locked_completion_ratio(audio_model) or COMPLETION_RATIO  # gpt-4o's own
    text_in, text_out = 100 - 40, 50 - 30
    expected = (text_in + 40 * audio + text_out * completion + 30 * audio * audio_out) * MODEL_RATIO
    assert log["quota"] == round(expected)
    assert log["quota"] > expected_charge(100, 50)  # more than the same tokens as text
