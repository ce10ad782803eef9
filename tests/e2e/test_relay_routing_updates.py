"""The relay follows channel edits with deltas: it fetches what changed, not the whole table."""

from __future__ import annotations

import json
import re

import httpx
from openai.types.chat import ChatCompletionMessageParam

from tests.support.infra import METRICS_TOKEN
from tests.support.relay_kit import world as world
from tests.support.world import World, eventually, new_customer, price_model, sdk

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
UPDATES = re.compile(r'^veloera_relay_routing_updates_total\{kind="(\w+)"\} ([0-9.e+]+)$', re.M)


async def routing_updates(world: World) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        reply = await client.get(
            world.relay_url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
        text = reply.text
    return {kind: float(value) for kind, value in UPDATES.findall(text)}


async def test_a_channel_edit_reaches_the_relay_as_a_delta(world: World) -> None:
    customer = await new_customer(world)
    mapped = customer.model + "-mapped"
    await price_model(world.root, mapped)  # billed under the name the channel maps it to
    before = await routing_updates(world)
    mapping = json.dumps({customer.model: mapped})
    await world.root.call(
        "PUT", "/api/channel/", json={"id": customer.channel_id, "model_mapping": mapping}
    )

    async def mapped_upstream() -> bool | None:
        await sdk(world, customer.key).chat.completions.create(model=customer.model, messages=HI)
        return True if world.fake.requests_for(mapped) else None

    await eventually(mapped_upstream, within=5.0)  # the edit changed where requests go
    after = await routing_updates(world)
    assert after.get("delta", 0) > before.get("delta", 0)
    assert after.get("full", 0) == before.get("full", 0)  # no snapshot was fetched for it


async def test_a_change_to_every_channel_makes_the_relay_reload_the_snapshot(world: World) -> None:
    customer = await new_customer(world)
    before = await routing_updates(world)
    await world.root.call("POST", "/api/channel/fix")  # rebuilds every channel's abilities

    async def reloaded() -> dict[str, float] | None:
        now = await routing_updates(world)
        return now if now.get("full", 0) > before.get("full", 0) else None

    await eventually(reloaded, within=10.0)
    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI
    )
    assert reply.choices[0].message.content == world.fake.reply_text  # routes from the new table
