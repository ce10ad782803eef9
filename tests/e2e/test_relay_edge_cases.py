"""End to end: bad input, broken upstream streams, tool calls, empty answers, sync clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import TOOL_CALL
from tests.support.helpers import create_token
from tests.support.infra import METRICS_TOKEN
from tests.support.relay_kit import HI, TOOLS, charged_once, steer
from tests.support.relay_kit import world as world
from tests.support.world import (
    Customer,
    World,
    expected_charge,
    new_customer,
    sdk,
    settled_logs,
    wallet,
)

pytestmark = pytest.mark.e2e


async def post(world: World, customer: Customer, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10.0) as client:
        headers = {"Authorization": f"Bearer sk-{customer.key}", **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        return await client.post(
            world.relay_url + "/v1/chat/completions",
            headers=headers,
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b"{not json", {}, 400, "invalid_request"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', {}, 400, "invalid_request"),
        (b'{"model": "m", "messages": [{}], "n": 1000}', {}, 400, "invalid_request"),
        (b'{"model": "m", "messages": [{}], "max_tokens": 1073741824}', {}, 400, "invalid_request"),
        (b'{"model": "m", "messages": [{}], "n": 0}', {}, 400, "invalid_request"),
        (b'{"model": "m", "messages": [{}], "max_tokens": -1}', {}, 400, "invalid_request"),
        (b'{"model": "m", "messages": [{}], "max_tokens": "9"}', {}, 400, "invalid_request"),
        (b"[1, 2]", {}, 400, "invalid_request"),
        (b"a=b", {"Content-Type": "application/x-www-form-urlencoded"}, 415,
         "unsupported_content_type"),
    ],
)  # fmt: skip
async def test_bad_input_is_refused_in_openai_shape(
    world: World, content: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    answer = await post(world, customer, content=content, headers=headers)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["code"] == code and "request id" in error["message"]
    assert (await wallet(customer))["quota"] == before["quota"]
    await still_serving(world, customer)


async def still_serving(world: World, customer: Customer) -> None:
    """The relay keeps serving after a bad request, and charges the good one once."""
    before = await wallet(customer)
    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI
    )
    assert reply.choices[0].message.content == world.fake.reply_text
    await charged_once(customer, before)


async def test_body_over_the_size_limit_is_413(world: World) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    oversized = b'{"model": "m", "messages": [], "pad": "' + b"x" * (33 << 20) + b'"}'

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the relay must count
        for start in range(0, len(oversized), 1 << 20):
            yield oversized[start : start + (1 << 20)]

    for content in (oversized, chunks()):
        try:
            answer = await post(world, customer, content=content)
        except httpx.WriteError:  # the relay may answer and close before the upload ends
            continue
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "request_too_large"
    assert (await wallet(customer))["quota"] == before["quota"]
    await still_serving(world, customer)


async def test_multipart_endpoint_refuses_json(world: World) -> None:
    customer = await new_customer(world)
    async with httpx.AsyncClient(timeout=10.0) as client:
        answer = await client.post(
            world.relay_url + "/v1/audio/transcriptions",
            headers={"Authorization": f"Bearer sk-{customer.key}"},
            json={"model": customer.model, "file": "not a file"},
        )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "unsupported_content_type" and error["type"] == "invalid_request_error"
    await still_serving(world, customer)


async def test_tool_calls_non_stream_and_stream_are_billed(world: World) -> None:
    customer = await new_customer(world)
    await steer(world, customer, "fake-tools")
    client = sdk(world, customer.key)
    before = await wallet(customer)
    reply = await client.chat.completions.create(
        model=customer.model,
        messages=HI,
        tools=TOOLS,
    )
    calls = reply.choices[0].message.tool_calls
    assert calls is not None and calls[0].id == TOOL_CALL["id"]
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 5) > 0  # a tool-call-only reply is billed

    stream = await client.chat.completions.create(
        model=customer.model,
        messages=HI,
        tools=TOOLS,
        stream=True,
    )
    names = [
        call.function.name
        async for chunk in stream
        if chunk.choices and chunk.choices[0].delta.tool_calls
        for call in chunk.choices[0].delta.tool_calls
        if call.function is not None
    ]
    assert names == ["get_weather"]
    logs = await settled_logs(customer, 2)
    assert logs[0]["quota"] > 0


async def test_empty_upstream_answers_go_to_another_channel(world: World) -> None:
    customer = await new_customer(world)
    await steer(world, customer, "fake-blank")
    client = sdk(world, customer.key)
    reply = await client.chat.completions.create(model=customer.model, messages=HI)
    assert reply.choices[0].message.content == world.fake.reply_text
    stream = await client.chat.completions.create(model=customer.model, messages=HI, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == world.fake.reply_text
    logs = await settled_logs(customer, 2)
    assert all(log["quota"] == expected_charge(10, 5) for log in logs)


async def test_stream_broken_mid_line_ends_cleanly_and_charges_once(world: World) -> None:
    customer = await new_customer(world)
    await steer(world, customer, "fake-break")
    before = await wallet(customer)
    answer = await post(
        world, customer, json={"model": customer.model, "messages": HI, "stream": True}
    )
    assert answer.status_code == 200
    assert answer.text.count("data: [DONE]") == 1
    log = await charged_once(customer, before)
    assert log["is_stream"] is True
    # The relay keeps serving.
    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI
    )
    assert reply.choices


async def test_sync_sdk_client(world: World) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)

    def run() -> tuple[str, str]:
        with openai.OpenAI(
            api_key=f"sk-{customer.key}", base_url=world.relay_url + "/v1", max_retries=0
        ) as client:
            reply = client.chat.completions.create(model=customer.model, messages=HI)
            stream = client.chat.completions.create(model=customer.model, messages=HI, stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            return reply.choices[0].message.content or "", text

    plain, streamed = await asyncio.to_thread(run)
    assert plain == streamed == world.fake.reply_text
    logs = await settled_logs(customer, 2)
    after = await wallet(customer)
    assert before["quota"] - after["quota"] == sum(log["quota"] for log in logs)


async def test_metrics_carry_bounded_labels(world: World) -> None:
    customer = await new_customer(world)
    await sdk(world, customer.key).chat.completions.create(model=customer.model, messages=HI)
    with pytest.raises(openai.APIStatusError):
        await sdk(world, customer.key).chat.completions.create(
            model="unknown-" + customer.model, messages=HI
        )
    async with httpx.AsyncClient(timeout=10.0) as client:
        public = await client.get(world.relay_url + "/metrics")
        scraped = await client.get(
            world.relay_url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
    assert public.status_code == 404 and "veloera_relay" not in public.text  # not public
    text = scraped.text
    assert f'model="{customer.model}"' in text  # a served model is a label
    assert "unknown-" not in text  # a name nobody serves is not
    for name in (
        "veloera_relay_requests_total",
        "veloera_relay_upstream_seconds",
        "veloera_relay_overhead_seconds",
        "veloera_relay_tokens_total",
        "veloera_relay_channels",
    ):
        assert name in text


async def test_per_key_rate_limit_answers_429(world: World) -> None:
    customer = await new_customer(world)
    limited = await create_token(
        customer.console,
        rate_limit_enabled=True,
        rate_limit_period=60,
        rate_limit_count=1,
        rate_limit_success=100,
    )
    client = sdk(world, limited["key"])
    await client.chat.completions.create(model=customer.model, messages=HI)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model=customer.model, messages=HI)
    assert caught.value.code == "rate_limited"
    logs = await settled_logs(customer, 1)
    assert len(logs) == 1  # the refused request is not charged
