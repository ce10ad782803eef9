"""End to end: Baidu Wenxin Qianfan v1 (type 15) channels. The official `openai` SDK through the
relay to a fake speaking Baidu's API: the key bought an access token once and reused, ERNIE
models sent to their endpoints, system prompts and limits in Baidu's fields, streams, embeddings,
and Baidu's errors inside a 200 answer turned into the right failures; each answer charged once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.baidu_upstream import PREFIX, REPLY, FakeBaidu
from tests.support.relay_kit import charged_once, customer_on
from tests.support.relay_kit import world as world
from tests.support.world import (
    Customer,
    World,
    expected_charge,
    price_model,
    sdk,
    settled_logs,
    wallet,
)

pytestmark = pytest.mark.e2e
BAIDU = 15


@pytest.fixture(scope="module")
def baidu_fake() -> Iterator[FakeBaidu]:
    with FakeBaidu() as fake:
        yield fake


async def on_baidu(
    world: World, fake: FakeBaidu, upstream_model: str, *, key: str = "", **fields: Any
) -> Customer:
    """A key whose model is `upstream_model` on one Baidu channel of its own."""
    model = f"ernie-{uuid.uuid4().hex[:8]}"
    await price_model(world.root, upstream_model)
    return await customer_on(
        world,
        model,
        base_url=fake.url,
        type_=BAIDU,
        key=key or f"ak-{uuid.uuid4().hex}|sk-{uuid.uuid4().hex}",
        model_mapping=json.dumps({model: upstream_model}),
        **fields,
    )


def chats(fake: FakeBaidu) -> list[Any]:
    return [r for r in fake.requests if r.path.startswith(PREFIX)]


async def test_chat_buys_a_token_once_and_speaks_baidu_s_format(
    world: World, baidu_fake: FakeBaidu
) -> None:
    customer = await on_baidu(world, baidu_fake, "ERNIE-4.0-8K")
    before = await wallet(customer)
    client = sdk(world, customer.key)
    fetched = baidu_fake.token_requests

    reply = await client.chat.completions.create(
        model=customer.model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        max_tokens=100,
        temperature=0.3,
        user="alice",
    )
    await client.chat.completions.create(
        model=customer.model, messages=[{"role": "user", "content": "again"}], max_tokens=100
    )

    assert reply.choices[0].message.content == REPLY
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (9, 6)
    assert baidu_fake.token_requests == fetched + 1  # one token, reused
    first = chats(baidu_fake)[-2]
    assert first.path == PREFIX + "/chat/completions_pro"
    assert first.query.startswith("access_token=24.fake-")
    assert first.body == {
        "messages": [{"role": "user", "content": "hi"}],
        "system": "Be brief.",
        "stream": False,
        "temperature": 0.3,
        "max_output_tokens": 100,
        "user_id": "alice",
    }
    [token_request] = [r for r in baidu_fake.requests if r.path == "/oauth/2.0/token"][-1:]
    assert "client_secret=sk-" in token_request.query
    logs = await charged_twice(customer, before)
    assert all(log["quota"] == expected_charge(9, 6) for log in logs)


async def charged_twice(customer: Customer, before: dict[str, Any]) -> list[dict[str, Any]]:
    logs = await settled_logs(customer, 2)
    after = await wallet(customer)
    assert before["quota"] - after["quota"] == sum(log["quota"] for log in logs)
    return logs


async def test_a_stream_and_other_models_go_to_their_endpoints(
    world: World, baidu_fake: FakeBaidu
) -> None:
    customer = await on_baidu(world, baidu_fake, "ERNIE-4.0-Turbo-8K")
    before = await wallet(customer)

    stream = await sdk(world, customer.key).chat.completions.create(
        model=customer.model,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]

    assert "".join(pieces) == REPLY
    request = chats(baidu_fake)[-1]
    assert request.path == PREFIX + "/chat/ernie-4.0-turbo-8k"  # unlisted names: lower-cased
    assert request.body["stream"] is True
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(9, 6)


async def test_an_expired_token_is_fetched_anew(world: World, baidu_fake: FakeBaidu) -> None:
    customer = await on_baidu(world, baidu_fake, "ERNIE-3.5-8K")
    client = sdk(world, customer.key)
    await client.chat.completions.create(
        model=customer.model, messages=[{"role": "user", "content": "hi"}]
    )
    fetched = baidu_fake.token_requests
    baidu_fake.revoke()

    # Baidu's 110 inside a 200: the attempt fails as a 503, which the SDK retries with a
    # fresh token (the openai SDK retries 5xx twice by default).
    retrying = openai.AsyncOpenAI(
        api_key=f"sk-{customer.key}", base_url=f"{world.relay_url}/v1", max_retries=2
    )
    try:
        reply = await retrying.chat.completions.create(
            model=customer.model, messages=[{"role": "user", "content": "hi"}]
        )
    finally:
        await retrying.close()

    assert reply.choices[0].message.content == REPLY
    assert baidu_fake.token_requests == fetched + 1


async def test_baidu_errors_inside_a_200_fail_the_request_and_cost_nothing(
    world: World, baidu_fake: FakeBaidu
) -> None:
    limited = await on_baidu(world, baidu_fake, "fail-qps")
    before = await wallet(limited)
    with pytest.raises(openai.RateLimitError) as throttled:
        await sdk(world, limited.key).chat.completions.create(
            model=limited.model, messages=[{"role": "user", "content": "hi"}]
        )
    assert throttled.value.status_code == 429  # the relay's own words for a saturated upstream

    refused = await on_baidu(world, baidu_fake, "ERNIE-4.0-8K", key="bad|secret")
    with pytest.raises(openai.AuthenticationError) as unknown:
        await sdk(world, refused.key).chat.completions.create(
            model=refused.model, messages=[{"role": "user", "content": "hi"}]
        )
    assert "unknown client id" in unknown.value.message

    two_users = await on_baidu(world, baidu_fake, "ERNIE-4.0-8K")
    with pytest.raises(openai.BadRequestError):
        await sdk(world, two_users.key).chat.completions.create(
            model=two_users.model,
            messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        )
    assert (await wallet(limited))["quota"] == before["quota"]


async def test_embeddings_come_back_in_openai_shape(world: World, baidu_fake: FakeBaidu) -> None:
    customer = await on_baidu(world, baidu_fake, "Embedding-V1")
    before = await wallet(customer)

    answer = await sdk(world, customer.key).embeddings.create(
        model=customer.model, input=["one", "two"]
    )

    assert [item.embedding for item in answer.data] == [[0.5, 0.25], [0.5, 0.25]]
    request = [r for r in baidu_fake.requests if "/embeddings/" in r.path][-1]
    assert request.path == PREFIX + "/embeddings/embedding-v1"
    assert request.body == {"input": ["one", "two"]}
    log = await charged_once(customer, before)
    assert log["prompt_tokens"] == 9


async def test_a_channel_test_goes_through_the_token(world: World, baidu_fake: FakeBaidu) -> None:
    customer = await on_baidu(world, baidu_fake, "ERNIE-4.0-8K")

    tested = await world.root.envelope("GET", f"/api/channel/test/{customer.channel_id}")

    assert tested["success"], tested["message"]
    assert chats(baidu_fake)[-1].path == PREFIX + "/chat/completions_pro"
