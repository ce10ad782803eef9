"""End to end: OpenAI's Realtime API (`/v1/realtime`, a websocket) through the relay to a fake
speaking Realtime's event protocol: both directions relayed (text and binary frames), each
`response.done` charged once on its own log row with its audio tokens at the audio ratios, a
wallet that runs out cut cleanly, bad keys and channels without Realtime refused, the
upstream's close code passed on."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from services.shared.pricing_rules import audio_ratios, locked_completion_ratio
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.realtime_upstream import DELTAS, USAGE, FakeRealtime
from tests.support.relay_kit import customer_on
from tests.support.relay_kit import world as world
from tests.support.world import (
    COMPLETION_RATIO,
    MODEL_RATIO,
    Customer,
    World,
    eventually,
    price_model,
    settled_logs,
    wallet,
)

pytestmark = pytest.mark.e2e
REALTIME_MODEL = "gpt-4o-realtime-preview"


@pytest.fixture(scope="module")
def realtime_fake() -> Iterator[FakeRealtime]:
    with FakeRealtime() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def realtime_customer(
    world: World, fake: FakeRealtime, *, quota: int = 1_000_000
) -> Customer:
    """A key whose model is served as gpt-4o-realtime-preview by one OpenAI channel."""
    model = f"rt-{uuid.uuid4().hex[:8]}"
    await price_model(world.root, REALTIME_MODEL)
    customer = await customer_on(
        world,
        model,
        base_url=fake.url,
        type_=1,
        key=f"sk-channel-{uuid.uuid4().hex}",
        model_mapping=json.dumps({model: REALTIME_MODEL}),
    )
    if quota != 1_000_000:
        await set_quota(world, customer, quota, 1_000_000)
    return customer


async def set_quota(world: World, customer: Customer, quota: int, was: int) -> None:
    edit = {"id": customer.user_id, "quota": quota, "original_quota": was, "group": "default"}
    await world.root.call("PUT", "/api/user/", json=edit)


def url(world: World, model: str) -> str:
    return world.relay_url.replace("http://", "ws://") + f"/v1/realtime?model={model}"


async def connect(
    http: aiohttp.ClientSession, world: World, customer: Customer
) -> aiohttp.ClientWebSocketResponse:
    headers = {"Authorization": f"Bearer sk-{customer.key}"}
    return await http.ws_connect(url(world, customer.model), headers=headers)


async def events_until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> list[dict[str, Any]]:
    """Server events up to and including the first of type `kind`."""
    seen: list[dict[str, Any]] = []
    while True:
        message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        event = json.loads(message.data)
        seen.append(event)
        if event["type"] == kind:
            return seen


def response_price() -> int:
    """What one fake response costs: text and audio tokens at gpt-4o-realtime's ratios."""
    audio, audio_out = audio_ratios(REALTIME_MODEL) or (1.0, 1.0)
    completion = locked_completion_ratio(REALTIME_MODEL) or COMPLETION_RATIO
    into: dict[str, int] = USAGE["input_token_details"]
    out: dict[str, int] = USAGE["output_token_details"]
    tokens = (
        into["text_tokens"]
        + into["audio_tokens"] * audio
        + out["text_tokens"] * completion
        + out["audio_tokens"] * audio * audio_out
    )
    return round(tokens * MODEL_RATIO)


async def test_each_response_is_relayed_and_charged_once_on_its_own_row(
    world: World, realtime_fake: FakeRealtime, http: aiohttp.ClientSession
) -> None:
    customer = await realtime_customer(world, realtime_fake)
    before = await wallet(customer)

    async with await connect(http, world, customer) as ws:
        assert (await events_until(ws, "session.created"))[-1]["type"] == "session.created"
        await ws.send_json(
            {"type": "session.update", "session": {"max_response_output_tokens": 200}}
        )
        await events_until(ws, "session.updated")
        await ws.send_bytes(b"\x00\x01audio")
        echoed = await ws.receive(timeout=10)
        assert (echoed.type, echoed.data) == (aiohttp.WSMsgType.BINARY, b"\x00\x01audio")
        answers = []
        for _ in range(2):
            await ws.send_json({"type": "response.create"})
            answers.append(await events_until(ws, "response.done"))

    for events in answers:
        text = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
        assert "".join(text) == "".join(DELTAS)
        assert events[-1]["response"]["usage"] == USAGE
    session = realtime_fake.sessions[-1]
    assert session["model"] == REALTIME_MODEL
    assert session["authorization"].startswith("Bearer sk-channel-")  # the channel's key
    logs = await settled_logs(customer, 2)
    assert [(log["prompt_tokens"], log["completion_tokens"]) for log in logs] == [(20, 10)] * 2
    assert [log["quota"] for log in logs] == [response_price()] * 2
    after = await eventually(lambda: _moved(customer, before, 2 * response_price()))
    assert before["quota"] - after["quota"] == 2 * response_price()


async def _moved(customer: Customer, before: dict[str, Any], amount: int) -> dict[str, Any] | None:
    """The wallet once it moved by `amount` (the session's last hold is released on close)."""
    now = await wallet(customer)
    return now if before["quota"] - now["quota"] == amount else None


async def test_a_browser_sends_its_key_as_a_subprotocol(
    world: World, realtime_fake: FakeRealtime, http: aiohttp.ClientSession
) -> None:
    customer = await realtime_customer(world, realtime_fake)
    protocols = (
        "realtime",
        f"openai-insecure-api-key.sk-{customer.key}",
        "openai-beta.realtime-v1",
    )

    async with http.ws_connect(url(world, customer.model), protocols=protocols) as ws:
        assert ws.protocol == "realtime"
        await events_until(ws, "session.created")


async def test_a_bad_key_is_refused_with_an_error_event_and_no_upstream_session(
    world: World, realtime_fake: FakeRealtime, http: aiohttp.ClientSession
) -> None:
    sessions = len(realtime_fake.sessions)
    headers = {"Authorization": "Bearer sk-not-a-key"}

    async with http.ws_connect(url(world, "rt-any"), headers=headers) as ws:
        [error] = await events_until(ws, "error")
        closed = await ws.receive(timeout=10)

    assert error["error"]["code"] in ("invalid_api_key", "invalid_token")
    assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 1008
    assert len(realtime_fake.sessions) == sessions


async def test_a_channel_without_realtime_is_refused(
    world: World, http: aiohttp.ClientSession
) -> None:
    claude = FakeAnthropic()
    claude.start()
    try:
        customer = await customer_on(
            world, f"rt-{uuid.uuid4().hex[:8]}", base_url=claude.url, type_=14, key="sk-ant-x"
        )
        async with await connect(http, world, customer) as ws:
            [error] = await events_until(ws, "error")
            closed = await ws.receive(timeout=10)
    finally:
        claude.stop()

    assert error["error"]["code"] == "unsupported_endpoint"
    assert closed.data == 1008


async def test_a_wallet_that_runs_out_ends_the_session_cleanly(
    world: World, realtime_fake: FakeRealtime, http: aiohttp.ClientSession
) -> None:
    customer = await realtime_customer(world, realtime_fake, quota=1)
    async with await connect(http, world, customer) as ws:
        [refused] = await events_until(ws, "error")
        assert (await ws.receive(timeout=10)).data == 1008
    assert refused["error"]["type"] == "insufficient_quota"
    match = re.search(r"up to (\d+) units", refused["error"]["message"])
    assert match is not None
    hold = int(match.group(1))  # what one response may cost: now exactly the balance
    await set_quota(world, customer, hold, 1)

    async with await connect(http, world, customer) as ws:
        await events_until(ws, "session.created")
        await ws.send_json({"type": "response.create"})
        done = await events_until(ws, "response.done")
        [spent] = await events_until(ws, "error")
        closed = await ws.receive(timeout=10)

    assert done[-1]["response"]["usage"] == USAGE  # the response itself reached the client
    assert spent["error"]["type"] == "insufficient_quota"
    assert closed.data == 1008
    [log] = await settled_logs(customer, 1)
    assert log["quota"] == response_price()
    assert (await wallet(customer))["quota"] == hold - response_price()


async def test_the_upstream_close_code_reaches_the_client_and_the_hold_is_released(
    world: World, realtime_fake: FakeRealtime, http: aiohttp.ClientSession
) -> None:
    customer = await realtime_customer(world, realtime_fake)
    before = await wallet(customer)

    async with await connect(http, world, customer) as ws:
        await events_until(ws, "session.created")
        await ws.send_json({"type": "fake.close"})
        closed = await ws.receive(timeout=10)

    assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4000
    assert await eventually(lambda: _moved(customer, before, 0))


async def test_an_unreachable_upstream_closes_the_session_and_costs_nothing(
    world: World, http: aiohttp.ClientSession
) -> None:
    gone = FakeRealtime()
    gone.start()
    gone.stop()  # its port is closed now
    customer = await realtime_customer(world, gone)
    before = await wallet(customer)

    async with await connect(http, world, customer) as ws:
        [error] = await events_until(ws, "error")
        closed = await ws.receive(timeout=10)

    assert error["error"]["code"] == "upstream_unreachable"
    assert closed.data == 1011
    assert await eventually(lambda: _moved(customer, before, 0))
