"""Async tasks end to end: Midjourney and Suno submits through the relay are charged once when
the upstream accepts, followed by the tasks service until they finish, and refunded once (the
user and the key's budget) when they fail; refusals and bad input cost nothing."""

from __future__ import annotations

from typing import Any

import httpx
import nats
import nats.js.errors
import pytest
from veloera.accounts.v1 import events_pb2 as accounts_events

from services.shared import subjects
from tests.fakes.task_upstream import IMAGE_BYTES, FakeTaskUpstream
from tests.support.infra import Infra
from tests.support.relay_kit import apply
from tests.support.relay_kit import options as options
from tests.support.relay_kit import world as world
from tests.support.tasks_kit import MJ_PRICE_USD, SUNO_PRICE_USD, _back_to, _drawer, _finished
from tests.support.web_kit import web_app
from tests.support.world import World, eventually

pytestmark = pytest.mark.e2e


async def test_imagine_is_charged_once_and_fetch_shows_the_image(
    world: World, fake_tasks: FakeTaskUpstream
) -> None:
    drawer = await _drawer(world, fake_tasks)
    quota0, budget0 = await drawer.balances()
    reply = await drawer.post("/mj/submit/imagine", {"prompt": "a red fox --fast"})
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["code"] == 1 and answer["result"]
    task_id = answer["result"]

    async def charged() -> list[dict[str, Any]] | None:
        rows = [row for row in await drawer.logs() if row["model_name"] == "mj_imagine"]
        return rows or None

    [row] = await eventually(charged)
    price = int(MJ_PRICE_USD * 500_000)
    assert row["quota"] == price
    await _back_to(drawer, (quota0 - price, budget0 - price))

    task = await _finished(drawer, f"/mj/task/{task_id}/fetch", ("SUCCESS", "FAILURE"))
    assert task["status"] == "SUCCESS" and task["progress"] == "100%"
    assert task["imageUrl"] == fake_tasks.image_url(task_id)
    assert task["action"] == "IMAGINE" and task["prompt"] == "a red fox --fast"
    # The same task under a mode prefix and through list-by-condition.
    listed = await drawer.post("/mj-fast/mj/task/list-by-condition", {"ids": [task_id]})
    assert [item["id"] for item in listed.json()] == [task_id]
    seed = await drawer.get(f"/mj/task/{task_id}/image-seed")
    assert seed.json()["result"] == "12345"
    # Charged once, never refunded.
    await _back_to(drawer, (quota0 - price, budget0 - price))
    assert len([r for r in await drawer.logs() if r["model_name"] == "mj_imagine"]) == 1


async def _failure_notice(infra: Infra, user_id: int) -> accounts_events.UserNotification:
    """The newest user notification on the events stream, once it is this user's."""
    nc = await nats.connect(infra.nats_url)
    try:
        js = nc.jetstream()

        async def newest() -> accounts_events.UserNotification | None:
            try:
                raw = await js.get_last_msg(
                    subjects.EVENTS_STREAM, subjects.USER_NOTIFICATION_SUBJECT
                )
            except nats.js.errors.NotFoundError:
                return None
            notice = accounts_events.UserNotification.FromString(raw.data or b"")
            return notice if notice.user_id == user_id else None

        return await eventually(newest, within=20)
    finally:
        await nc.close()


async def test_a_failed_task_is_refunded_once_to_user_and_key(
    world: World, fake_tasks: FakeTaskUpstream, infra: Infra
) -> None:
    drawer = await _drawer(world, fake_tasks)
    quota0, budget0 = await drawer.balances()
    reply = await drawer.post("/mj/submit/imagine", {"prompt": "please fail"})
    assert reply.status_code == 200 and reply.json()["code"] == 1, reply.text
    task_id = reply.json()["result"]
    task = await _finished(drawer, f"/mj/task/{task_id}/fetch", ("SUCCESS", "FAILURE"))
    assert task["status"] == "FAILURE" and task["failReason"] == "banned by the moderator"

    async def refunded() -> bool | None:
        return True if await drawer.balances() == (quota0, budget0) else None

    await eventually(refunded, within=20)
    # the user is told (accounts delivers it by email or webhook, as their settings say)
    notice = await _failure_notice(infra, drawer.console.user_id)
    assert notice.type == "task_failed"
    assert list(notice.values) == ["Midjourney", task_id, "banned by the moderator"]
    logs = await drawer.logs()
    refunds = [row for row in logs if "补偿" in row["content"]]
    assert len(refunds) == 1 and refunds[0]["quota"] == int(MJ_PRICE_USD * 500_000)
    assert task_id in refunds[0]["content"]
    # Later poll cycles (a second task followed to its end) refund nothing more.
    again = await drawer.post("/mj/submit/imagine", {"prompt": "a calm lake"})
    await _finished(drawer, f"/mj/task/{again.json()['result']}/fetch", ("SUCCESS",))
    price = int(MJ_PRICE_USD * 500_000)
    await _back_to(drawer, (quota0 - price, budget0 - price))
    assert len([row for row in await drawer.logs() if "补偿" in row["content"]]) == 1


async def test_a_refused_submit_costs_nothing_and_answers_in_mj_shape(
    world: World, fake_tasks: FakeTaskUpstream
) -> None:
    drawer = await _drawer(world, fake_tasks)
    before = await drawer.balances()
    reply = await drawer.post("/mj/submit/imagine", {"prompt": "reject me"})
    assert reply.status_code == 400
    body = reply.json()
    assert body["code"] == 24 and "banned prompt" in body["description"]
    await _back_to(drawer, before)  # the hold is released
    assert not [r for r in await drawer.logs() if r["model_name"] == "mj_imagine"]


async def test_bad_input_gets_clear_errors_and_costs_nothing(
    world: World, fake_tasks: FakeTaskUpstream
) -> None:
    drawer = await _drawer(world, fake_tasks)
    before = await drawer.balances()
    sent = len(fake_tasks.submits)
    cases: list[tuple[str, object, int, str]] = [
        ("/mj/submit/imagine", {}, 400, "prompt is required"),
        ("/mj/submit/imagine", {"prompt": 5}, 400, "prompt must be a string"),
        ("/mj/submit/imagine", [1, 2], 400, "JSON object"),
        ("/mj/submit/blend", {"base64Array": ["a"]}, 400, "2 to 5 images"),
        ("/mj/submit/change", {"taskId": "x", "action": "EXPLODE"}, 400, "action must be"),
        ("/mj/submit/simple-change", {"content": "nonsense"}, 400, "content must be"),
        ("/mj/submit/teleport", {"prompt": "x"}, 400, "unknown submit action"),
        ("/mj/submit/change", {"taskId": "nope", "action": "UPSCALE", "index": 1}, 404, "task"),
        ("/warp/mj/submit/imagine", {"prompt": "x"}, 404, "unknown mode"),
    ]
    for path, body, status, words in cases:
        reply = await drawer.post(path, body)
        assert reply.status_code == status, (path, reply.text)
        assert words in reply.json()["description"], (path, reply.text)
        assert reply.json()["code"] in (4, 5)
    missing = await drawer.get("/mj/task/does-not-exist/fetch")
    assert missing.status_code == 404 and missing.json()["code"] == 4
    async with httpx.AsyncClient(base_url=drawer.relay_url, timeout=10) as client:
        anonymous = await client.post("/mj/submit/imagine", json={"prompt": "x"})
        secret = await client.get(
            "/mj/task/does-not-exist/fetch",
            headers={"Authorization": "midjourney-proxy", "mj-api-secret": drawer.token["key"]},
        )
    assert anonymous.status_code == 401 and anonymous.json()["code"] == 4
    assert secret.status_code == 404  # the mj-api-secret header authenticates (upstream)
    assert len(fake_tasks.submits) == sent
    await _back_to(drawer, before)


async def test_suno_music_is_charged_followed_and_fetched(
    world: World, fake_tasks: FakeTaskUpstream
) -> None:
    drawer = await _drawer(world, fake_tasks)
    quota0, budget0 = await drawer.balances()
    reply = await drawer.post("/suno/submit/music", {"prompt": "a song about foxes"})
    assert reply.status_code == 200, reply.text
    task_id = reply.json()["data"]
    price = int(SUNO_PRICE_USD * 500_000)

    async def charged() -> bool | None:
        return True if await drawer.balances() == (quota0 - price, budget0 - price) else None

    await eventually(charged)
    done = await _finished(drawer, f"/suno/fetch/{task_id}", ("SUCCESS", "FAILURE"))
    assert done["data"]["status"] == "SUCCESS"
    assert done["data"]["data"][0]["audio_url"].endswith(f"{task_id}.mp3")
    listed = await drawer.post("/suno/fetch", {"ids": [task_id]})
    assert [item["task_id"] for item in listed.json()["data"]] == [task_id]
    refused = await drawer.post("/suno/submit/music", {"prompt": "reject this"})
    assert refused.status_code == 400 and "prompt rejected" in refused.json()["message"]
    bad = await drawer.post("/suno/submit/dance", {"prompt": "x"})
    assert bad.status_code == 400 and "music or lyrics" in bad.json()["message"]
    await _back_to(drawer, (quota0 - price, budget0 - price))


async def test_task_and_drawing_logs_with_filters_and_a_truthful_status(
    world: World, fake_tasks: FakeTaskUpstream
) -> None:
    drawer = await _drawer(world, fake_tasks)
    drawn = (await drawer.post("/mj/submit/imagine", {"prompt": "an owl"})).json()["result"]
    sung = (await drawer.post("/suno/submit/music", {"prompt": "owl song"})).json()["data"]
    await _finished(drawer, f"/mj/task/{drawn}/fetch", ("SUCCESS",))
    await _finished(drawer, f"/suno/fetch/{sung}", ("SUCCESS",))

    mine = await drawer.console.call("GET", "/api/mj/self", params={"p": 1, "page_size": 10})
    [drawing] = mine["items"]
    assert drawing["mj_id"] == drawn and drawing["status"] == "SUCCESS"
    assert drawing["image_url"] == fake_tasks.image_url(drawn) and drawing["prompt"] == "an owl"
    assert "channel_id" not in drawing  # admins only
    tasks = await drawer.console.call("GET", "/api/task/self", params={"platform": "suno"})
    assert [item["task_id"] for item in tasks["items"]] == [sung]
    assert tasks["items"][0]["action"] == "MUSIC" and tasks["items"][0]["platform"] == "suno"
    none = await drawer.console.call("GET", "/api/task/self", params={"status": "FAILURE"})
    assert none["items"] == [] and none["total"] == 0
    admin = await world.root.call("GET", "/api/mj/", params={"mj_id": drawn})
    assert [item["mj_id"] for item in admin["items"]] == [drawn]
    assert admin["items"][0]["channel_id"] > 0
    for path, params in (
        ("/api/task/self", {"status": "EXPLODED"}),
        ("/api/task/self", {"platform": "dalle"}),
        ("/api/mj/self", {"start_timestamp": "yesterday"}),
    ):
        reply = await drawer.console.client.get(
            path, params=params, headers={"Veloera-User": str(drawer.console.user_id)}
        )
        assert reply.status_code == 400 and reply.json()["success"] is False, reply.text
    forbidden = await drawer.console.envelope("GET", "/api/mj/")
    assert forbidden["success"] is False

    status = (await drawer.console.client.get("/api/status")).json()["data"]
    assert status["enable_drawing"] is True and status["enable_task"] is True


async def test_status_reports_drawing_and_tasks_off_without_task_state(
    world: World, fake_tasks: FakeTaskUpstream, service_env: dict[str, str]
) -> None:
    """A console that cannot reach the tasks service (no NATS) offers neither, even with
    Midjourney and Suno channels enabled; drawing also needs a channel of its own."""
    await _drawer(world, fake_tasks)
    async with web_app(service_env, NATS_URL="") as app:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as c:
            status = (await c.get("/api/status")).json()["data"]
    assert status["enable_drawing"] is False and status["enable_task"] is False
    live = (await world.root.client.get("/api/status")).json()["data"]
    assert live["enable_drawing"] is True and live["enable_task"] is True


async def test_mj_options_filter_the_body_and_forward_image_urls(
    world: World, fake_tasks: FakeTaskUpstream, options: dict[str, str]
) -> None:
    drawer = await _drawer(world, fake_tasks)
    await apply(
        world,
        options,
        {
            "MjForwardUrlEnabled": "true",
            "MjModeClearEnabled": "true",
            "MjNotifyEnabled": "false",
            "ServerAddress": world.relay_url,
        },
    )
    reply = await drawer.post(
        "/mj-relax/mj/submit/imagine",
        {"prompt": "a heron --relax", "notifyHook": "http://hook.test/", "accountFilter": {}},
    )
    assert reply.status_code == 200, reply.text
    task_id = reply.json()["result"]
    path, sent = fake_tasks.submits[-1]
    assert path == "/mj/submit/imagine"  # the mode segment is not sent upstream
    assert sent == {"prompt": "a heron"}  # mode flag stripped; hook and filter dropped
    task = await _finished(drawer, f"/mj/task/{task_id}/fetch", ("SUCCESS",))
    assert task["imageUrl"] == f"{world.relay_url}/mj/image/{task_id}"
    async with httpx.AsyncClient(timeout=10) as client:
        image = await client.get(task["imageUrl"])
        missing = await client.get(f"{world.relay_url}/mj/image/nope")
    assert image.status_code == 200 and image.content == IMAGE_BYTES
    assert image.headers["content-type"] == "image/png"
    assert missing.status_code == 404 and missing.json()["code"] == 4
