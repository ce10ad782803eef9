"""Dify (37) channels through the relay, against a fake speaking Dify's chat-messages API: the
conversation arrives as one transcript query with image URLs as files, blocking and streamed
answers come back as OpenAI chat with Dify's usage charged, and errors cost nothing."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.fakes.dify_upstream import ANSWER, FakeDify
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

DIFY = 37
IMAGE = "https://example.com/cat.png"
CONVERSATION: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are a bot."},
    {"role": "user", "content": "hello"},
    {"role": "assistant", "content": "hi there"},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": IMAGE}},
        ],
    },
]


@pytest.fixture(scope="module")
def dify() -> Iterator[FakeDify]:
    with FakeDify() as fake:
        yield fake


@pytest.fixture
async def customer(world: World, dify: FakeDify) -> Customer:
    dify.fail_in_stream, dify.refuse = False, False
    return await customer_on(world, DIFY, dify.url, key="app-key", prefix="dify-app-")


async def test_a_blocking_chat_is_one_transcript_and_difys_usage_is_charged(
    world: World, dify: FakeDify, customer: Customer
) -> None:
    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=CONVERSATION, user="end-user-7"
    )
    assert reply.choices[0].message.content == "".join(ANSWER)
    assert reply.usage is not None and reply.usage.prompt_tokens == 60
    sent = dify.last.body
    assert sent["query"] == (
        "SYSTEM: \nYou are a bot.\nUSER: \nhello\nASSISTANT: \nhi there\nUSER: \nwhat is this?\n"
    )
    assert sent["files"] == [{"type": "image", "transfer_mode": "remote_url", "url": IMAGE}]
    assert (sent["response_mode"], sent["user"]) == ("blocking", "end-user-7")
    [log] = await settled_logs(customer, 1)
    assert log["quota"] == expected_charge(60, 6)


async def test_a_dify_stream_arrives_as_openai_chunks_and_is_charged(
    world: World, dify: FakeDify, customer: Customer
) -> None:
    stream = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=CONVERSATION, stream=True
    )
    text, finish = "", None
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert (text, finish) == ("".join(ANSWER), "stop")
    assert dify.last.body["response_mode"] == "streaming"
    assert dify.last.body["user"].startswith("veloera-")  # no client user: one per request
    [log] = await settled_logs(customer, 1)
    assert log["quota"] == expected_charge(60, 6)


async def test_inline_images_stream_errors_and_upstream_errors_cost_nothing(
    world: World, dify: FakeDify, customer: Customer
) -> None:
    before = await wallet(customer)
    client = sdk(world, customer.key)
    inline: list[openai.types.chat.ChatCompletionMessageParam] = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}],
        }
    ]
    with pytest.raises(openai.BadRequestError) as images:
        await client.chat.completions.create(model=customer.model, messages=inline)
    assert images.value.code == "unsupported_image"
    dify.fail_in_stream = True
    with pytest.raises(openai.BadRequestError) as failed:
        stream = await client.chat.completions.create(
            model=customer.model, messages=CONVERSATION, stream=True
        )
        async for _chunk in stream:
            pass
    assert "out of quota" in failed.value.message
    dify.refuse = True
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model=customer.model, messages=CONVERSATION)
    assert "query is required" in refused.value.message  # Dify's own message
    assert (await wallet(customer))["quota"] == before["quota"]
