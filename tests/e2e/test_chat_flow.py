"""End to end: the official openai SDK through the relay, charged exactly, with a log row."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.helpers import (
    create_channel,
    create_token,
)
from tests.support.relay_kit import world as world
from tests.support.world import (
    CONSUME_LOG,
    Customer,
    World,
    eventually,
    expected_charge,
    new_customer,
    sdk,
    settled_logs,
    token_item,
    wallet,
)

pytestmark = pytest.mark.e2e


async def test_non_stream_chat_is_charged_exactly_once_with_a_log_row(world: World) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    client = sdk(world, customer.key)

    reply = await client.chat.completions.create(
        model=customer.model, messages=[{"role": "user", "content": "hello"}]
    )

    assert reply.choices[0].message.content == world.fake.reply_text
    assert reply.usage is not None
    charge = expected_charge(reply.usage.prompt_tokens, reply.usage.completion_tokens)
    [log] = await settled_logs(customer, 1)
    after = await wallet(customer)
    assert before["quota"] - after["quota"] == charge
    assert after["used_quota"] - before["used_quota"] == charge
    assert after["request_count"] == before["request_count"] + 1
    assert log["quota"] == charge
    assert log["model_name"] == customer.model
    assert log["prompt_tokens"] == reply.usage.prompt_tokens
    assert log["completion_tokens"] == reply.usage.completion_tokens
    assert log["token_name"] == customer.token["name"]
    assert log["channel_name"].startswith("ch")
    assert log["is_stream"] is False
    assert log["ip"] == ""  # the user did not opt in to IP logging
    channel = await world.root.call("GET", f"/api/channel/{customer.channel_id}")
    assert channel["used_quota"] == charge
    assert channel["request_count"] == 1


async def test_stream_chat_forwards_chunks_and_charges_from_upstream_usage(world: World) -> None:
    customer = await new_customer(world, unlimited_quota=False, remain_quota=100_000)
    before = await wallet(customer)
    client = sdk(world, customer.key)

    stream = await client.chat.completions.create(
        model=customer.model,
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage

    assert text == world.fake.reply_text
    assert usage is not None
    charge = expected_charge(usage.prompt_tokens, usage.completion_tokens)
    [log] = await settled_logs(customer, 1)
    after = await wallet(customer)
    token = await token_item(customer)
    assert before["quota"] - after["quota"] == charge
    assert token["remain_quota"] == 100_000 - charge
    assert token["used_quota"] == charge
    assert log["is_stream"] is True
    assert log["quota"] == charge
    # The relay forced include_usage upstream even though the fake would not send it otherwise.
    [sent] = world.fake.requests_for(customer.model)
    assert sent.body["stream_options"] == {"include_usage": True}


async def test_stream_without_usage_request_hides_the_usage_chunk(world: World) -> None:
    customer = await new_customer(world)
    client = sdk(world, customer.key)
    stream = await client.chat.completions.create(
        model=customer.model, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        world.fake.reply_text
    )
    [log] = await settled_logs(customer, 1)
    assert log["quota"] > 0


async def test_models_lists_the_channel_models(world: World) -> None:
    customer = await new_customer(world)
    models = await sdk(world, customer.key).models.list()
    assert customer.model in [model.id for model in models.data]
    one = await sdk(world, customer.key).models.retrieve(customer.model)
    assert one.id == customer.model


async def test_hf_prefix_behaves_like_v1(world: World) -> None:
    customer = await new_customer(world)
    client = sdk(world, customer.key, prefix="/hf/v1")
    reply = await client.chat.completions.create(
        model=customer.model, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == world.fake.reply_text


async def assert_nothing_charged(customer: Customer, before: dict[str, Any]) -> None:
    after = await wallet(customer)
    assert after["quota"] == before["quota"]
    assert after["used_quota"] == before["used_quota"]
    page = await customer.console.call("GET", "/api/log/self", params={"p": 1, "type": CONSUME_LOG})
    assert page["items"] == []


async def test_wrong_key_is_401_in_openai_shape(world: World) -> None:
    client = sdk(world, "x" * 48)
    with pytest.raises(openai.AuthenticationError) as caught:
        await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert "request id" in error["message"]
    assert caught.value.response.headers["X-Veloera-Request-Id"]


async def test_disabled_key_is_refused_and_charges_nothing(world: World) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    await customer.console.call(
        "PUT",
        "/api/token/",
        params={"status_only": 1},
        json={"id": customer.token["id"], "status": 2},
    )

    async def refused() -> bool | None:
        try:
            await sdk(world, customer.key).chat.completions.create(
                model=customer.model, messages=[{"role": "user", "content": "hi"}]
            )
        except openai.AuthenticationError:
            return True
        return None

    assert await eventually(refused, within=5.0)
    await assert_nothing_charged(customer, before)


async def test_expired_key_is_refused(world: World) -> None:
    customer = await new_customer(world)
    expiring = await create_token(customer.console, expired_time=int(time.time()) + 2)
    await asyncio.sleep(2.5)
    before = await wallet(customer)
    with pytest.raises(openai.AuthenticationError) as caught:
        await sdk(world, expiring["key"]).chat.completions.create(
            model=customer.model, messages=[{"role": "user", "content": "hi"}]
        )
    assert "expired" in str(caught.value)
    await assert_nothing_charged(customer, before)


async def test_model_outside_allow_list_is_403(world: World) -> None:
    customer = await new_customer(world)
    limited = await create_token(
        customer.console, model_limits_enabled=True, model_limits="other-model"
    )
    before = await wallet(customer)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await sdk(world, limited["key"]).chat.completions.create(
            model=customer.model, messages=[{"role": "user", "content": "hi"}]
        )
    assert customer.model in str(caught.value)
    await assert_nothing_charged(customer, before)
    listed = await sdk(world, limited["key"]).models.list()
    assert [model.id for model in listed.data] == []


async def test_exhausted_balance_is_403_insufficient_quota(world: World) -> None:
    customer = await new_customer(world, quota=5)
    before = await wallet(customer)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await sdk(world, customer.key).chat.completions.create(
            model=customer.model, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "insufficient_user_quota"
    await assert_nothing_charged(customer, before)


async def test_a_model_nobody_serves_is_404_model_not_found(world: World) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    with pytest.raises(openai.NotFoundError) as caught:  # not retried, unlike a 503
        await sdk(world, customer.key).chat.completions.create(
            model="no-such-model-anywhere", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 404 and caught.value.code == "model_not_found"
    assert "no-such-model-anywhere" in caught.value.message
    await assert_nothing_charged(customer, before)


async def test_failing_channel_retries_on_another_and_charges_once(world: World) -> None:
    broken = FakeOpenAI(force_status=500)
    broken.start()
    try:
        customer = await new_customer(world)
        # A higher-priority channel for the same model that always answers 500.
        await create_channel(world.root, base_url=broken.url, models=[customer.model], priority=10)
        await asyncio.sleep(0)  # the relay reloads its snapshot on the change event
        before = await wallet(customer)

        async def served_after_retry() -> Any:
            count = len(broken.requests)
            reply = await sdk(world, customer.key).chat.completions.create(
                model=customer.model, messages=[{"role": "user", "content": "hi"}]
            )
            return reply if len(broken.requests) > count else None

        reply = await eventually(served_after_retry)
        assert reply.choices[0].message.content == world.fake.reply_text
        logs = await settled_logs(customer, 1)
        after = await wallet(customer)
        charged = sum(log["quota"] for log in logs)
        assert before["quota"] - after["quota"] == charged
        assert logs[0]["quota"] == expected_charge(
            reply.usage.prompt_tokens if reply.usage else 0,
            reply.usage.completion_tokens if reply.usage else 0,
        )
    finally:
        broken.stop()
