"""Jina (38) and MokaAI M3E (44) channels: embeddings (and Jina's rerank) reach the provider in
its own shape and are charged; endpoints the provider does not serve are refused and cost
nothing; an M3E channel needs the address of its server."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.support.helpers import unique_name
from tests.support.relay_kit import world as world
from tests.support.world import (
    World,
    customer_on,
    expected_charge,
    sdk,
    settled_logs,
    wallet,
)

pytestmark = pytest.mark.e2e

JINA, MOKAAI = 38, 44


async def test_jina_embeddings_and_rerank_pass_through_and_are_charged(world: World) -> None:
    customer = await customer_on(world, JINA, world.fake.url, prefix="embed-")
    world.fake.clear()
    reply = await sdk(world, customer.key).embeddings.create(
        model=customer.model, input=["first", "second"]
    )
    assert [item.index for item in reply.data] == [0, 1]
    sent = world.fake.last_request
    assert sent.path == "/v1/embeddings" and sent.body["input"] == ["first", "second"]

    async with httpx.AsyncClient(base_url=world.relay_url, timeout=10.0) as client:
        ranked = await client.post(
            "/v1/rerank",
            json={"model": customer.model, "query": "q", "documents": ["a", "b", "c"]},
            headers={"Authorization": f"Bearer sk-{customer.key}"},
        )
    assert ranked.status_code == 200, ranked.text
    assert [r["index"] for r in ranked.json()["results"]] == [0, 1, 2]
    assert world.fake.last_request.path == "/v1/rerank"
    logs = await settled_logs(customer, 2)
    assert all(log["quota"] == expected_charge(world.fake.prompt_tokens, 0) for log in logs)


async def test_jina_refuses_chat_and_charges_nothing(world: World) -> None:
    customer = await customer_on(world, JINA, world.fake.url, prefix="embed-")
    before = await wallet(customer)
    world.fake.clear()
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk(world, customer.key).chat.completions.create(
            model=customer.model, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.code == "unsupported_endpoint"
    assert world.fake.requests_to("/v1/chat/completions") == []
    assert (await wallet(customer))["quota"] == before["quota"]


async def test_m3e_takes_a_list_of_strings_at_its_embeddings_path(world: World) -> None:
    customer = await customer_on(world, MOKAAI, world.fake.url + "/v1", prefix="embed-")
    world.fake.clear()
    reply = await sdk(world, customer.key).embeddings.create(model=customer.model, input="hello")
    assert len(reply.data) == 1
    sent = world.fake.last_request
    assert sent.path == "/v1/embeddings"
    assert sent.body == {"model": customer.model, "input": ["hello"]}
    [log] = await settled_logs(customer, 1)
    assert log["quota"] == expected_charge(world.fake.prompt_tokens, 0)


async def test_m3e_refuses_token_ids_and_chat_and_charges_nothing(world: World) -> None:
    customer = await customer_on(world, MOKAAI, world.fake.url + "/v1", prefix="embed-")
    before = await wallet(customer)
    client = sdk(world, customer.key)
    with pytest.raises(openai.BadRequestError) as ids:
        await client.embeddings.create(model=customer.model, input=[[1, 2, 3]])
    assert ids.value.code == "invalid_input"
    with pytest.raises(openai.BadRequestError) as chat:
        await client.chat.completions.create(
            model=customer.model, messages=[{"role": "user", "content": "hi"}]
        )
    assert chat.value.code == "unsupported_endpoint"
    assert (await wallet(customer))["quota"] == before["quota"]


async def test_an_m3e_channel_needs_its_server_address(world: World) -> None:
    body: dict[str, Any] = {
        "type": MOKAAI,
        "name": unique_name("m3e"),
        "key": "sk-m3e",
        "base_url": "",
        "models": "m3e-base",
        "group": "default",
    }
    refused = await world.root.envelope("POST", "/api/channel/", json=body)
    assert refused["success"] is False and "base URL" in refused["message"]
