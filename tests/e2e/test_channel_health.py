"""Channel health from the console: tests (manual and test-all), auto-disable and recovery,
balances and upstream model lists, against a loopback fake upstream that fails then recovers
(upstream `controller/channel-test.go`, `controller/channel-billing.go`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from veloera.relay.v1.relay_pb2 import ChannelProbeResponse

from services.shared import internal_auth, nats_auth, natsutil, subjects
from services.shared.channel_probes import ChannelGone, ProbeClient, ProbeFailed, ProbeUnavailable
from services.shared.config import Secret
from services.tasks import channel_jobs
from services.tasks.settings import Settings
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.helpers import (
    PLANE,
    ROOT_PASSWORD,
    ROOT_USERNAME,
    Console,
    create_channel,
    create_user,
    root_console,
)
from tests.support.infra import Infra
from tests.support.relay_kit import world as world
from tests.support.web_kit import web_app
from tests.support.world import World, eventually, new_customer

ENABLED, MANUAL, AUTO = 1, 2, 3


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    """This module's own upstream: tests break and mend it."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def root(
    web_url: str, relay_url: str, upstream: FakeOpenAI, saved_options: None
) -> AsyncIterator[Console]:
    """Root with auto-disable and auto-enable on; the relay makes the probes."""
    console = await root_console(web_url)
    wanted = {
        "AutomaticDisableChannelEnabled": "true",
        "AutomaticEnableChannelEnabled": "true",
        "ChannelDisableThreshold": "5",
    }
    for key, value in wanted.items():
        await console.call("PUT", "/api/option/", json={"key": key, "value": value})
    try:
        yield console
    finally:
        upstream.force_status, upstream.behavior = None, ""
        upstream.failing_keys.clear()
        await console.aclose()


async def channel(root: Console, channel_id: int) -> dict[str, Any]:
    item: dict[str, Any] = await root.call("GET", f"/api/channel/{channel_id}")
    return item


async def run_test(root: Console, channel_id: int, **params: Any) -> dict[str, Any]:
    return await root.envelope("GET", f"/api/channel/test/{channel_id}", params=params)


async def test_a_test_goes_through_the_channel_and_stores_the_response_time(
    root: Console, upstream: FakeOpenAI
) -> None:
    key = "sk-health-" + "a" * 20
    channel_id = await create_channel(
        root, base_url=upstream.url, models=["health-client"], key=key,
        model_mapping=json.dumps({"health-client": "health-upstream"}),
        param_override=json.dumps({"temperature": 0.5}), openai_organization="org-health",
    )  # fmt: skip
    upstream.clear()
    reply = await run_test(root, channel_id)
    assert reply["success"], reply["message"]
    assert reply["data"]["model"] == "health-client"
    sent = upstream.last_request
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "health-upstream"  # the channel's model mapping
    assert sent.body["messages"] == [{"role": "user", "content": "hi"}]
    assert sent.body["max_tokens"] == 10 and sent.body["temperature"] == 0.5
    assert sent.headers["authorization"] == f"Bearer {key}"
    assert sent.headers["openai-organization"] == "org-health"
    stored = await channel(root, channel_id)
    assert stored["test_time"] > 0
    assert stored["response_time"] == reply["data"]["response_time"]

    listed = await root.call("GET", "/api/channel/", params={"keyword": stored["name"]})
    [item] = listed["items"]
    assert item["response_time"] == stored["response_time"] and item["test_time"] > 0

    embed = await run_test(root, channel_id, model="text-embedding-3-small")
    assert embed["success"], embed["message"]
    assert upstream.last_request.path == "/v1/embeddings"
    assert upstream.last_request.body["input"] == "hello world"


async def test_a_failing_channel_is_disabled_and_re_enabled_once_it_recovers(
    root: Console, upstream: FakeOpenAI
) -> None:
    channel_id = await create_channel(root, base_url=upstream.url, models=["health-recover"])
    upstream.force_status = 401
    failed = await run_test(root, channel_id)
    assert not failed["success"] and "401" in failed["message"]
    assert failed["data"]["channel_disabled"]
    stored = await channel(root, channel_id)
    assert stored["status"] == AUTO and "401" in stored["status_reason"]
    assert [k["status"] for k in stored["keys"]] == [AUTO]

    upstream.force_status = None
    passed = await run_test(root, channel_id)
    assert passed["success"], passed["message"]
    assert passed["data"]["channel_enabled"]
    stored = await channel(root, channel_id)
    assert stored["status"] == ENABLED and stored["status_reason"] == ""
    assert [k["status"] for k in stored["keys"]] == [ENABLED]


async def test_a_failure_never_shows_or_stores_the_key(root: Console, upstream: FakeOpenAI) -> None:
    key = "sk-secret-" + "d" * 24
    channel_id = await create_channel(
        root, base_url=upstream.url, models=["fake-leak-401"], key=key
    )
    failed = await run_test(root, channel_id)  # the upstream quotes the key and an address
    assert not failed["success"] and "Incorrect API key" in failed["message"]
    stored = await channel(root, channel_id)
    for text in (failed["message"], stored["status_reason"], stored["keys"][0]["last_error"]):
        assert key not in text and "10.20.30.40" not in text and text


async def test_a_transient_failure_does_not_disable(root: Console, upstream: FakeOpenAI) -> None:
    channel_id = await create_channel(root, base_url=upstream.url, models=["health-502"])
    upstream.force_status = 502
    failed = await run_test(root, channel_id)
    assert not failed["success"]
    assert (await channel(root, channel_id))["status"] == ENABLED


async def test_a_channel_disabled_by_hand_is_never_re_enabled(
    root: Console, upstream: FakeOpenAI
) -> None:
    channel_id = await create_channel(
        root, base_url=upstream.url, models=["health-manual"], status=MANUAL
    )
    passed = await run_test(root, channel_id)
    assert passed["success"], passed["message"]
    assert (await channel(root, channel_id))["status"] == MANUAL


async def test_a_slow_answer_above_the_threshold_disables(
    root: Console, upstream: FakeOpenAI
) -> None:
    await root.call("PUT", "/api/option/", json={"key": "ChannelDisableThreshold", "value": "0.2"})
    channel_id = await create_channel(root, base_url=upstream.url, models=["fake-slow"])
    upstream.slow_seconds = 1.0
    reply = await run_test(root, channel_id)
    assert not reply["success"] and reply["data"]["channel_disabled"]
    stored = await channel(root, channel_id)
    assert stored["status"] == AUTO and "above" in stored["status_reason"]


async def test_each_key_of_a_multi_key_channel_is_tested(
    root: Console, upstream: FakeOpenAI
) -> None:
    good, bad = "sk-good-" + "b" * 20, "sk-bad-" + "c" * 20
    channel_id = await create_channel(
        root, base_url=upstream.url, models=["health-keys"], key=f"{good}\n{bad}"
    )
    upstream.failing_keys.add(bad)
    only_first = await run_test(root, channel_id, key_index=0)
    assert only_first["success"] and [k["index"] for k in only_first["data"]["keys"]] == [0]

    both = await run_test(root, channel_id)
    assert not both["success"] and "key #1" in both["message"]
    stored = await channel(root, channel_id)
    assert stored["status"] == ENABLED  # one key is still good
    assert [k["status"] for k in stored["keys"]] == [ENABLED, AUTO]

    upstream.failing_keys.clear()
    assert (await run_test(root, channel_id))["success"]
    assert [k["status"] for k in (await channel(root, channel_id))["keys"]] == [ENABLED, ENABLED]


async def test_test_all_runs_in_the_background(root: Console, upstream: FakeOpenAI) -> None:
    channel_id = await create_channel(root, base_url=upstream.url, models=["health-all"])
    started = await root.envelope("GET", "/api/channel/test")
    assert started["success"], started["message"]

    async def tested() -> bool | None:
        return True if (await channel(root, channel_id))["test_time"] > 0 else None

    await eventually(tested, within=30.0)


@pytest.mark.parametrize("channel_type", [1, 20, 40, 43])
async def test_balance_is_queried_and_stored(
    root: Console, upstream: FakeOpenAI, channel_type: int
) -> None:
    """OpenAI (subscription minus usage), OpenRouter credits, SiliconFlow, DeepSeek."""
    channel_id = await create_channel(
        root, base_url=upstream.url, models=["health-balance"], type=channel_type
    )
    data = await root.call("GET", f"/api/channel/update_balance/{channel_id}")
    assert data["balance"] == pytest.approx(upstream.credit_usd - upstream.used_usd)
    stored = await channel(root, channel_id)
    assert stored["balance"] == pytest.approx(12.5) and stored["balance_updated_time"] > 0


async def test_update_all_balances_runs_in_the_background(
    root: Console, upstream: FakeOpenAI
) -> None:
    channel_id = await create_channel(root, base_url=upstream.url, models=["b-all"], type=40)
    started = await root.envelope("GET", "/api/channel/update_balance")
    assert started["success"], started["message"]

    async def refreshed() -> dict[str, Any] | None:
        item = await channel(root, channel_id)
        return item if item["balance_updated_time"] > 0 else None

    assert (await eventually(refreshed, within=30.0))["balance"] == pytest.approx(12.5)


async def test_balance_of_a_type_without_a_balance_api_is_a_clear_failure(
    root: Console, upstream: FakeOpenAI
) -> None:
    channel_id = await create_channel(root, base_url=upstream.url, models=["b"], type=25)
    reply = await root.envelope("GET", f"/api/channel/update_balance/{channel_id}")
    assert not reply["success"] and "no balance query" in reply["message"]
    upstream.force_status = 401
    broken = await create_channel(root, base_url=upstream.url, models=["b"])
    reply = await root.envelope("GET", f"/api/channel/update_balance/{broken}")
    assert not reply["success"] and "401" in reply["message"]


async def test_fetch_models_of_a_saved_and_an_unsaved_channel(
    root: Console, upstream: FakeOpenAI
) -> None:
    channel_id = await create_channel(root, base_url=upstream.url, models=["m"])
    assert await root.call("GET", f"/api/channel/fetch_models/{channel_id}") == upstream.models

    upstream.clear()
    body = {"type": 14, "base_url": upstream.url, "key": "sk-ant-unsaved"}
    assert await root.call("POST", "/api/channel/fetch_models", json=body) == upstream.models
    sent = upstream.last_request
    assert sent.path == "/v1/models" and sent.headers["x-api-key"] == "sk-ant-unsaved"

    body = {"type": 24, "base_url": upstream.url, "key": "gemini-key"}
    assert await root.call("POST", "/api/channel/fetch_models", json=body) == upstream.models
    assert upstream.last_request.path == "/v1beta/openai/models"


async def test_bad_requests_get_clear_failures(
    root: Console, web_url: str, upstream: FakeOpenAI
) -> None:
    headers = {"Veloera-User": str(root.user_id)}
    client = root.client
    for path in ("/api/channel/test/abc", "/api/channel/update_balance/-1"):
        reply = await client.get(path, headers=headers)
        assert reply.status_code == 400 and reply.json()["success"] is False, path
    for path in (
        "/api/channel/test/987654321",
        "/api/channel/update_balance/987654321",
        "/api/channel/fetch_models/987654321",
    ):
        reply = await client.get(path, headers=headers)
        assert reply.status_code == 200 and reply.json() == {
            "success": False, "message": "channel not found", "data": None,
        }, path  # fmt: skip
    for body in ({"type": 1, "base_url": upstream.url}, {"type": 1, "key": "k", "base_url": "x"}):
        reply = await client.post("/api/channel/fetch_models", json=body, headers=headers)
        assert reply.status_code == 400 and reply.json()["success"] is False, body
    channel_id = await create_channel(root, base_url=upstream.url, models=["m"])
    reply = await client.get(f"/api/channel/test/{channel_id}", params={"key_index": 5},
                             headers=headers)  # fmt: skip
    assert reply.json()["success"] is False and "index 5" in reply.json()["message"]

    user, _ = await create_user(root, quota=0)
    try:
        for path in (f"/api/channel/test/{channel_id}", "/api/channel/test",
                     f"/api/channel/fetch_models/{channel_id}"):  # fmt: skip
            denied = await user.envelope("GET", path)
            assert denied["success"] is False and "Permission" in denied["message"], path
    finally:
        await user.aclose()
    async with httpx.AsyncClient(base_url=web_url) as anonymous:
        reply = await anonymous.get(f"/api/channel/test/{channel_id}")
        assert reply.status_code == 401 and reply.json()["success"] is False


@pytest.fixture
async def scheduled(accounts_addr: str, infra: Infra) -> AsyncIterator[None]:
    """The tasks service's scheduled channel jobs, in this process, every 0.6 s, calling
    accounts with the tasks service's own credential and asking the session's relay over NATS
    as the tasks service's NATS user."""
    token = PLANE[internal_auth.token_variable(internal_auth.TASKS)]
    settings = Settings(
        database_url=Secret(infra.database_url), nats_url="", nats_password=Secret(""),
        bind_host="127.0.0.1", metrics_port=0, log_level="INFO", fetch_batch=1,
        fetch_timeout=1.0, update_task=False, poll_interval=15.0, poll_lease=60.0,
        poll_batch=1, poll_request_timeout=5.0, task_timeout=3600.0, channel_test_minutes=0.01,
        channel_update_minutes=0.01, accounts_addr=accounts_addr,
        credential=internal_auth.Credential(internal_auth.TASKS, Secret(token)),
        channel_probe_timeout=3.0,
    )  # fmt: skip
    assert infra.nats is not None
    nc = await natsutil.connect(
        infra.nats.url,
        name="test-tasks",
        user=nats_auth.TASKS,
        password=Secret(PLANE[nats_auth.password_variable(nats_auth.TASKS)]),
    )
    try:
        async with channel_jobs.running(settings, nc) as jobs:
            assert len(jobs) == 2
            yield
    finally:
        await natsutil.drain(nc)


async def test_scheduled_tests_disable_a_failing_channel_and_re_enable_it_once_it_recovers(
    root: Console, upstream: FakeOpenAI, scheduled: None
) -> None:
    failing = await create_channel(root, base_url=upstream.url, models=["sched-recover"])
    by_hand = await create_channel(
        root, base_url=upstream.url, models=["sched-manual"], status=MANUAL
    )
    balance = await create_channel(root, base_url=upstream.url, models=["sched-b"], type=43)
    upstream.force_status = 401

    async def status_is(channel_id: int, status: int) -> dict[str, Any] | None:
        item = await channel(root, channel_id)
        return item if item["status"] == status and item["test_time"] > 0 else None

    await eventually(lambda: status_is(failing, AUTO), within=30.0)
    upstream.force_status = None
    await eventually(lambda: status_is(failing, ENABLED), within=30.0)
    tested = await eventually(lambda: status_is(by_hand, MANUAL), within=30.0)
    assert tested["status"] == MANUAL  # tested with the rest, never re-enabled

    async def refreshed() -> dict[str, Any] | None:
        item = await channel(root, balance)
        return item if item["balance_updated_time"] > 0 else None

    assert (await eventually(refreshed, within=30.0))["balance"] == pytest.approx(12.5)


async def test_the_relay_stops_and_resumes_routing_with_the_tests_verdict(
    root: Console, upstream: FakeOpenAI, world: World
) -> None:
    customer = await new_customer(world, base_url=upstream.url)
    body = {"model": customer.model, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer sk-{customer.key}"}

    async def relay_answers(status: int) -> dict[str, Any] | None:
        async with httpx.AsyncClient(base_url=world.relay_url, timeout=10.0) as client:
            reply = await client.post("/v1/chat/completions", json=body, headers=headers)
        return reply.json() if reply.status_code == status else None

    upstream.force_status = 401
    assert (await run_test(root, customer.channel_id))["data"]["channel_disabled"]
    upstream.force_status = None  # the upstream works again, but the channel is off
    refused = await eventually(lambda: relay_answers(503), within=5.0)
    assert refused["error"]["code"] == "no_available_channel"

    assert (await run_test(root, customer.channel_id))["data"]["channel_enabled"]
    served = await eventually(lambda: relay_answers(200), within=5.0)
    assert served["choices"][0]["message"]["content"] == upstream.reply_text


async def test_probes_over_nats_answer_gone_channels_and_bad_requests_clearly(
    relay_url: str, infra: Infra
) -> None:
    """What the console and the tasks service get from the relays for a channel that does not
    exist, a request that cannot be decoded, and when NATS is not connected."""
    assert infra.nats is not None
    nc = await natsutil.connect(
        infra.nats.url,
        name="test-web",
        user=nats_auth.WEB,
        password=Secret(PLANE[nats_auth.password_variable(nats_auth.WEB)]),
    )
    try:
        client = ProbeClient(lambda: nc, probe_timeout=3.0)
        for probe in (client.test(987_654_321), client.balance(987_654_321)):
            with pytest.raises(ChannelGone):
                await probe
        with pytest.raises(ProbeFailed, match="no key"):
            await client.unsaved_models(1, "", " ")
        reply = await nc.request(subjects.CHANNEL_PROBE, b"\xff\x01", timeout=10.0)
        assert ChannelProbeResponse.FromString(reply.data).error == "undecodable request"
    finally:
        await natsutil.drain(nc)
    with pytest.raises(ProbeUnavailable, match="not connected"):
        await ProbeClient(lambda: None, probe_timeout=3.0).test(1)


async def test_without_nats_the_console_says_channel_probes_cannot_be_made(
    service_env: dict[str, str], root: Console
) -> None:
    """A console whose NATS link is down answers each probe action at once with why."""
    async with web_app(service_env, NATS_URL="") as app:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40001))
        async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as c:
            signed = await c.post(
                "/api/user/login", json={"username": ROOT_USERNAME, "password": ROOT_PASSWORD}
            )
            assert signed.json()["success"] is True
            headers = {"Veloera-User": str(signed.json()["data"]["id"])}
            for path in ("/api/channel/test", "/api/channel/test/1", "/api/channel/update_balance"):
                reply = (await c.get(path, headers=headers)).json()
                assert reply["success"] is False and "NATS" in reply["message"], path
