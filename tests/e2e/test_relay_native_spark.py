"""End to end: iFlytek Spark (type 18) channels, whose chat API is a websocket. The official
`openai` SDK through the relay to a fake Spark that checks the URL's HMAC authorization: the
version picks path and domain, answers and streams come back as OpenAI's, function calls,
Spark's error frames as the right failures, a channel test through the websocket; each answer
charged once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.spark_upstream import REPLY, FakeSpark
from tests.support.relay_kit import charged_once, customer_on
from tests.support.relay_kit import world as world
from tests.support.world import Customer, World, expected_charge, sdk, wallet

pytestmark = pytest.mark.e2e
SPARK = 18
APP_ID, API_KEY, API_SECRET = "5f1a2b3c", "key-" + uuid.uuid4().hex, "secret-" + uuid.uuid4().hex
HI: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def spark() -> Iterator[FakeSpark]:
    with FakeSpark(secrets={API_KEY: API_SECRET}) as fake:
        yield fake


async def on_spark(
    world: World, fake: FakeSpark, *, version: str = "v3.5", secret: str = API_SECRET
) -> Customer:
    return await customer_on(
        world,
        f"spark-{uuid.uuid4().hex[:8]}",
        base_url=fake.url,  # http: the adaptor speaks ws to it
        type_=SPARK,
        key=f"{APP_ID}|{secret}|{API_KEY}",
        other=version,
    )


async def test_chat_goes_over_the_signed_websocket_and_is_charged_once(
    world: World, spark: FakeSpark
) -> None:
    customer = await on_spark(world, spark)
    before = await wallet(customer)

    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model,
        messages=[{"role": "system", "content": "Be brief."}, *HI],
        max_tokens=100,
        temperature=0.5,
    )

    assert reply.choices[0].message.content == REPLY
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (6, 9)
    frame = spark.frames[-1]
    assert frame["header"]["app_id"] == APP_ID
    assert frame["parameter"]["chat"] == {
        "domain": "generalv3.5",
        "auditing": "default",
        "temperature": 0.5,
        "max_tokens": 100,
    }
    assert frame["payload"]["message"]["text"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert API_SECRET not in json.dumps(frame)
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(6, 9)


async def test_a_stream_and_another_version(world: World, spark: FakeSpark) -> None:
    customer = await on_spark(world, spark, version="v4.0")
    before = await wallet(customer)

    stream = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert spark.frames[-1]["parameter"]["chat"]["domain"] == "4.0Ultra"
    await charged_once(customer, before)


async def test_function_calls_come_back_as_tool_calls(world: World, spark: FakeSpark) -> None:
    customer = await on_spark(world, spark)
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]

    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI, tools=tools
    )

    calls = reply.choices[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls if c.type == "function"] == [
        ("get_weather", '{"city": "Hefei"}')
    ]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert spark.frames[-1]["payload"]["functions"]["text"][0]["name"] == "get_weather"


async def test_spark_s_errors_fail_the_request_and_cost_nothing(
    world: World, spark: FakeSpark
) -> None:
    customer = await on_spark(world, spark)
    before = await wallet(customer)
    client = sdk(world, customer.key)

    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(
            model=customer.model, messages=[{"role": "user", "content": "fail-11202"}]
        )
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model=customer.model,
            messages=[{"role": "user", "content": "fail-10014"}],
            stream=True,
        )
    assert (await wallet(customer))["quota"] == before["quota"]

    wrong = await on_spark(world, spark, secret="not-the-secret")
    with pytest.raises(openai.AuthenticationError):
        await sdk(world, wrong.key).chat.completions.create(model=wrong.model, messages=HI)


async def test_a_channel_test_goes_through_the_websocket(world: World, spark: FakeSpark) -> None:
    customer = await on_spark(world, spark)

    tested = await world.root.envelope("GET", f"/api/channel/test/{customer.channel_id}")

    assert tested["success"], tested["message"]
