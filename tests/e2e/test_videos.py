"""OpenAI's video API through the relay over an OpenAI channel: a create is charged once when
the upstream accepts it, followed to completion by the tasks service, its file served; a failed
video is refunded once (user and key); refusals and bad input cost nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fakes.task_upstream import VIDEO_BYTES, FakeTaskUpstream
from tests.support.helpers import create_channel, create_token, create_user, unique_name
from tests.support.relay_kit import set_model_price
from tests.support.relay_kit import world as world
from tests.support.tasks_kit import BUDGET, Drawer, _back_to
from tests.support.world import World, eventually, wait_for_model

pytestmark = pytest.mark.e2e

VIDEO_PRICE_USD = 0.1  # 50_000 units per video


async def _viewer(world: World, fake: FakeTaskUpstream) -> tuple[Drawer, str]:
    model = unique_name("sora-")
    await set_model_price(world.root, model, VIDEO_PRICE_USD)
    await create_channel(world.root, base_url=fake.url, models=[model], type=1, key=fake.key)
    console, _user_id = await create_user(world.root, quota=1_000_000)
    world.consoles.append(console)
    token = await create_token(console, unlimited_quota=False, remain_quota=BUDGET)
    await wait_for_model(world.relay_url, token["key"], model)
    return Drawer(console=console, token=token, relay_url=world.relay_url), model


async def _settled(viewer: Drawer, video_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        reply = await viewer.get(f"/v1/videos/{video_id}")
        if reply.status_code == 404:
            return None  # stored by the tasks service a moment after the answer
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body if body["status"] in ("completed", "failed") else None

    return await eventually(probe, within=30)


async def test_a_video_is_charged_once_followed_and_served(
    world: World, fake_tasks: FakeTaskUpstream
) -> None:
    viewer, model = await _viewer(world, fake_tasks)
    quota0, budget0 = await viewer.balances()
    reply = await viewer.post("/v1/videos", {"model": model, "prompt": "a fox running"})
    assert reply.status_code == 200, reply.text
    created = reply.json()
    assert created["object"] == "video" and created["status"] == "queued"
    price = int(VIDEO_PRICE_USD * 500_000)
    await _back_to(viewer, (quota0 - price, budget0 - price))
    done = await _settled(viewer, created["id"])
    assert done["status"] == "completed" and done["progress"] == 100
    assert done["model"] == model and done["seconds"] == "4"
    content = await viewer.get(f"/v1/videos/{created['id']}/content")
    assert content.status_code == 200 and content.content == VIDEO_BYTES
    assert content.headers["content-type"] == "video/mp4"
    rows = [row for row in await viewer.logs() if row["model_name"] == model]
    assert [row["quota"] for row in rows] == [price]
    tasks = await viewer.console.call("GET", "/api/task/self", params={"platform": "video"})
    assert [item["task_id"] for item in tasks["items"]] == [created["id"]]


async def test_a_failed_video_is_refunded_once(world: World, fake_tasks: FakeTaskUpstream) -> None:
    viewer, model = await _viewer(world, fake_tasks)
    quota0, budget0 = await viewer.balances()
    reply = await viewer.post("/v1/videos", {"model": model, "prompt": "this will fail"})
    assert reply.status_code == 200, reply.text
    done = await _settled(viewer, reply.json()["id"])
    assert done["status"] == "failed" and done["error"]["message"] == "the video was blocked"
    await _back_to(viewer, (quota0, budget0))
    refunds = [row for row in await viewer.logs() if "补偿" in row["content"]]
    assert [row["quota"] for row in refunds] == [int(VIDEO_PRICE_USD * 500_000)]
    early = await viewer.get(f"/v1/videos/{reply.json()['id']}/content")
    assert early.status_code == 409


async def test_refused_and_bad_video_requests_cost_nothing(
    world: World, fake_tasks: FakeTaskUpstream
) -> None:
    viewer, model = await _viewer(world, fake_tasks)
    before = await viewer.balances()
    refused = await viewer.post("/v1/videos", {"model": model, "prompt": "reject me"})
    assert refused.status_code == 400
    assert "blocked by moderation" in refused.json()["error"]["message"]
    for body, words in (
        ({"prompt": "x"}, "model is required"),
        ({"model": model}, "prompt is required"),
        ({"model": model, "prompt": "x", "seconds": 4}, "seconds must be a string"),
        ([1], "JSON object"),
    ):
        reply = await viewer.post("/v1/videos", body)
        assert reply.status_code == 400 and words in reply.json()["error"]["message"], reply.text
    async with httpx.AsyncClient(base_url=viewer.relay_url, timeout=10) as client:
        form = await client.post(
            "/v1/videos", data={"model": model, "prompt": "x"}, headers=viewer.headers
        )
    assert form.status_code == 415
    missing = await viewer.get("/v1/videos/video_nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    await _back_to(viewer, before)
