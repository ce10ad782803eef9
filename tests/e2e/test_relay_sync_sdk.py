"""End to end: the synchronous `openai.OpenAI` client (run in a thread) on every endpoint,
stream and non-stream, tool calls and multipart uploads; each call charged with a log row."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import openai
import pytest

from tests.fakes.openai_upstream import SPEECH_BYTES, TOOL_CALL, TRANSCRIPT
from tests.support.relay_kit import (
    HI,
    IMAGE_PRICE,
    QUOTA_PER_UNIT,
    TOOLS,
    PNG_1x1,
    set_model_price,
    steer,
    wav_bytes,
)
from tests.support.relay_kit import world as world
from tests.support.world import (
    CONSUME_LOG,
    Customer,
    World,
    eventually,
    new_customer,
    wallet,
)

pytestmark = pytest.mark.e2e
T = TypeVar("T")


async def consume_logs(customer: Customer, count: int) -> list[dict[str, Any]]:
    """The customer's consume rows (newest first) once there are `count` of them."""

    async def probe() -> list[dict[str, Any]] | None:
        page = await customer.console.call(
            "GET", "/api/log/self", params={"p": 1, "page_size": 50, "type": CONSUME_LOG}
        )
        items: list[dict[str, Any]] = page["items"]
        return items if len(items) >= count else None

    return await eventually(probe)


class Meter:
    """Runs one sync SDK call in a thread; checks it left exactly one charged log row."""

    def __init__(self, customer: Customer) -> None:
        self.customer = customer
        self.rows = 0

    async def call(self, fn: Callable[[], T], *, stream: bool = False) -> tuple[T, dict[str, Any]]:
        before = await wallet(self.customer)
        result = await asyncio.to_thread(fn)
        self.rows += 1
        logs = await consume_logs(self.customer, self.rows)
        assert len(logs) == self.rows  # one row per call, never two
        log = logs[0]
        after = await wallet(self.customer)
        assert before["quota"] - after["quota"] == log["quota"] > 0
        assert log["model_name"] == self.customer.model
        assert log["is_stream"] is stream
        return result, log


async def test_sync_client_on_every_endpoint(world: World) -> None:
    customer = await new_customer(world)
    model, meter = customer.model, Meter(customer)
    client = openai.OpenAI(
        api_key=f"sk-{customer.key}", base_url=world.relay_url + "/v1", max_retries=0
    )
    text = world.fake.reply_text
    try:
        reply, _ = await meter.call(lambda: client.completions.create(model=model, prompt="Hi"))
        assert reply.choices[0].text == text

        def completion_stream() -> str:
            stream = client.completions.create(model=model, prompt="Hi", stream=True)
            return "".join(chunk.choices[0].text for chunk in stream if chunk.choices)

        streamed, _ = await meter.call(completion_stream, stream=True)
        assert streamed == text

        embedding, _ = await meter.call(lambda: client.embeddings.create(model=model, input="x"))
        assert embedding.data[0].embedding == [0.1, 0.2, 0.3]
        moderation, _ = await meter.call(
            lambda: client.moderations.create(model=model, input="fine?")
        )
        assert moderation.results[0].flagged is False

        response, _ = await meter.call(lambda: client.responses.create(model=model, input="hi"))
        assert response.output_text == text

        def response_stream() -> str:
            events = client.responses.create(model=model, input="hi", stream=True)
            return "".join(e.delta for e in events if e.type == "response.output_text.delta")

        streamed, _ = await meter.call(response_stream, stream=True)
        assert streamed == text

        speech, _ = await meter.call(
            lambda: client.audio.speech.create(model=model, voice="alloy", input="Hello")
        )
        assert speech.content == SPEECH_BYTES
        audio = ("talk.wav", wav_bytes(2), "audio/wav")
        transcript, _ = await meter.call(
            lambda: client.audio.transcriptions.create(model=model, file=audio)
        )
        assert transcript.text == TRANSCRIPT

        await set_model_price(world.root, model, IMAGE_PRICE)
        images, log = await meter.call(
            lambda: client.images.generate(model=model, prompt="a cat", n=2)
        )
        assert images.data is not None and len(images.data) == 2
        assert log["quota"] == round(IMAGE_PRICE * QUOTA_PER_UNIT * 2)
        image = ("cat.png", PNG_1x1, "image/png")
        edit, log = await meter.call(
            lambda: client.images.edit(model=model, image=image, prompt="add a hat")
        )
        assert edit.data is not None and len(edit.data) == 1
        assert log["quota"] == round(IMAGE_PRICE * QUOTA_PER_UNIT)
        assert world.fake.requests_to("/v1/images/edits")[-1].body["image"]["size"] == len(PNG_1x1)

        await steer(world, customer, "fake-tools")
        tool_reply, _ = await meter.call(
            lambda: client.chat.completions.create(model=model, messages=HI, tools=TOOLS)
        )
        calls = tool_reply.choices[0].message.tool_calls
        assert calls is not None and calls[0].id == TOOL_CALL["id"]

        def tool_stream() -> list[str]:
            stream = client.chat.completions.create(
                model=model, messages=HI, tools=TOOLS, stream=True
            )
            return [
                call.function.name or ""
                for chunk in stream
                if chunk.choices and chunk.choices[0].delta.tool_calls
                for call in chunk.choices[0].delta.tool_calls
                if call.function is not None
            ]

        names, _ = await meter.call(tool_stream, stream=True)
        assert names == ["get_weather"]
    finally:
        client.close()
