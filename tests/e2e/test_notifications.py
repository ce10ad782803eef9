"""End to end: notifications (upstream `service/user_notify.go`) reach a loopback webhook
receiver that checks the signature, or a loopback SMTP server, from real events: usage through
the relay, a channel auto-disabled on an upstream 401, and any service's UserNotification."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import nats
import pytest
from aiohttp import web
from openai.types.chat import ChatCompletionMessageParam
from veloera.accounts.v1 import events_pb2

from services.cli.infra import free_port
from services.shared import subjects
from tests.support.helpers import Console, create_user, unique_name
from tests.support.mail import Mailbox
from tests.support.mail import mailbox as mailbox
from tests.support.relay_kit import add_channel, apply, mapped
from tests.support.relay_kit import options as options
from tests.support.relay_kit import world as world
from tests.support.world import (
    Customer,
    World,
    eventually,
    new_customer,
    price_model,
    sdk,
    settled_logs,
    wallet,
)

pytestmark = pytest.mark.e2e

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
SECRET = "whsec-test-" + uuid.uuid4().hex
MAX_ATTEMPTS = 3  # NOTIFY_MAX_ATTEMPTS in tests/conftest.py


class Infra(Protocol):
    database_url: str
    nats_url: str


@dataclass(frozen=True)
class Delivery:
    payload: dict[str, Any]
    signed: bool  # X-Webhook-Signature matched the HMAC-SHA256 of the body under SECRET
    timestamp_header: str


@dataclass
class Receiver:
    """A webhook receiver on loopback: one URL per test (`/hook/<name>`); names in `failing`
    answer 500. Records every attempt and whether its signature verified."""

    port: int = 0
    failing: set[str] = field(default_factory=set)
    attempts: dict[str, list[Delivery]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{name}"

    def received(self, name: str) -> list[Delivery]:
        with self.lock:
            return list(self.attempts.get(name, []))

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        delivery = Delivery(
            payload=json.loads(body),
            signed=hmac.compare_digest(request.headers.get("X-Webhook-Signature", ""), expected),
            timestamp_header=request.headers.get("X-Webhook-Timestamp", ""),
        )
        with self.lock:
            self.attempts.setdefault(name, []).append(delivery)
        if name in self.failing:
            return web.json_response({"error": "down"}, status=500)
        return web.json_response({"ok": True})


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    hooks = Receiver(port=free_port())
    app = web.Application()
    app.router.add_post("/hook/{name}", hooks.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", hooks.port).start()
    yield hooks
    await runner.cleanup()


@pytest.fixture
def inbox(mailbox: tuple[Mailbox, int]) -> Iterator[Mailbox]:
    yield mailbox[0]


async def _use_webhook(console: Console, hook: str, **more: Any) -> None:
    setting = {"notify_type": "webhook", "webhook_url": hook, "webhook_secret": SECRET, **more}
    await console.call("PUT", "/api/user/setting", json=setting)


async def _outcomes(infra: Infra, user_id: int, kind: str) -> list[str]:
    conn = await asyncpg.connect(infra.database_url)
    try:
        rows = await conn.fetch(
            "SELECT outcome FROM accounts.notifications WHERE user_id = $1 AND type = $2"
            " ORDER BY event_seq",
            user_id,
            kind,
        )
    finally:
        await conn.close()
    return [row["outcome"] for row in rows]


async def _set_quota(world: World, user_id: int, quota: int) -> None:
    """The admin sets the user's balance (as the console's user editor does)."""
    users = await world.root.call("GET", "/api/user/", params={"p": 1, "page_size": 100})
    user = next(item for item in users["items"] if item["id"] == user_id)
    edit = {"id": user_id, "quota": quota, "original_quota": user["quota"], "group": "default"}
    await world.root.call("PUT", "/api/user/", json=edit)


async def _spend(world: World, customer: Customer, requests: int) -> None:
    done = len(await settled_logs(customer, 0))
    for _ in range(requests):
        await sdk(world, customer.key).chat.completions.create(
            model=customer.model, messages=HI, max_tokens=10
        )
    await settled_logs(customer, done + requests)


async def _hooks(receiver: Receiver, name: str, count: int) -> list[Delivery]:
    async def probe() -> list[Delivery] | None:
        got = receiver.received(name)
        return got if len(got) >= count else None

    return await eventually(probe)


async def test_a_quota_warning_from_real_usage_reaches_the_webhook_once_per_crossing(
    world: World, receiver: Receiver, infra: Infra
) -> None:
    quota = 10_000
    threshold = quota - 1  # the first charged request takes the balance below it
    customer = await new_customer(world, quota=quota)
    hook = unique_name("quota")
    await _use_webhook(customer.console, receiver.url(hook), quota_warning_threshold=threshold)
    await _spend(world, customer, 3)
    [first] = await _hooks(receiver, hook, 1)
    assert first.signed and first.payload["type"] == "quota_exceed"
    assert first.payload["values"][1] == str(threshold)
    assert first.timestamp_header == str(first.payload["timestamp"])
    balance = (await wallet(customer))["quota"]
    assert first.payload["values"][0] == str(balance + 2 * 50)  # after the first of three

    # Above the threshold again, the next crossing warns again (the second and third
    # requests above did not: still below, no new crossing).
    await _set_quota(world, customer.user_id, quota)
    await _spend(world, customer, 1)
    await _hooks(receiver, hook, 2)

    # A third crossing within NOTIFICATION_LIMIT_DURATION_MINUTE is over NOTIFY_LIMIT_COUNT (2).
    await _set_quota(world, customer.user_id, quota)
    await _spend(world, customer, 1)

    async def limited() -> list[str] | None:
        found = await _outcomes(infra, customer.user_id, "quota_exceed")
        return found if len(found) == 3 else None

    assert await eventually(limited) == ["delivered", "delivered", "limited"]
    assert len(receiver.received(hook)) == 2


async def test_a_channel_disabled_on_upstream_401_is_mailed_to_an_admin(
    world: World, options: dict[str, str], mailbox: tuple[Mailbox, int], inbox: Mailbox
) -> None:
    await price_model(world.root, "fail-401")
    await apply(
        world,
        options,
        {
            "AutomaticDisableChannelEnabled": "true",
            "SMTPServer": "127.0.0.1",
            "SMTPPort": str(mailbox[1]),
            "SMTPFrom": "noreply@example.test",
            "SMTPSSLEnabled": "false",
        },
    )
    admin, _ = await create_user(world.root, quota=0, role=10)
    world.consoles.append(admin)
    address = f"{uuid.uuid4().hex[:12]}@example.com"
    await admin.call(
        "PUT", "/api/user/setting", json={"notify_type": "email", "notification_email": address}
    )
    customer = await new_customer(world)
    bad = await add_channel(
        world, customer, priority=10, model_mapping=mapped(customer, "fail-401")
    )
    await sdk(world, customer.key).chat.completions.create(model=customer.model, messages=HI)

    async def mailed() -> list[Any] | None:
        return inbox.to(address) or None

    [mail] = await eventually(mailed, within=20.0)
    assert f"(#{bad}) was disabled" in mail.subject
    assert "disabled automatically" in mail.body


async def _publish(infra: Infra, event: events_pb2.UserNotification) -> None:
    nc = await nats.connect(infra.nats_url)
    try:
        await nc.jetstream().publish(subjects.USER_NOTIFICATION_SUBJECT, event.SerializeToString())
    finally:
        await nc.drain()


def _task_failed(user_id: int, task: str) -> events_pb2.UserNotification:
    return events_pb2.UserNotification(
        user_id=user_id,
        type="task_failed",
        title="Your task failed",
        content="Task {{value}} failed: {{value}}",
        values=[task, "upstream error"],
        occur_time=int(time.time()),
    )


async def test_a_failing_webhook_is_retried_then_given_up_without_blocking_others(
    world: World, receiver: Receiver, infra: Infra
) -> None:
    broken, _ = await create_user(world.root, quota=0)
    healthy, _ = await create_user(world.root, quota=0)
    world.consoles += [broken, healthy]
    down, up = unique_name("down"), unique_name("up")
    receiver.failing.add(down)
    await _use_webhook(broken, receiver.url(down))
    await _use_webhook(healthy, receiver.url(up))

    await _publish(infra, _task_failed(broken.user_id, "t-1"))
    await _publish(infra, _task_failed(healthy.user_id, "t-2"))
    [delivered] = await _hooks(receiver, up, 1)
    assert delivered.signed
    assert delivered.payload == {
        "type": "task_failed",
        "title": "Your task failed",
        "content": "Task {{value}} failed: {{value}}",
        "values": ["t-2", "upstream error"],
        "timestamp": delivered.payload["timestamp"],
    }

    async def given_up() -> list[str] | None:
        found = await _outcomes(infra, broken.user_id, "task_failed")
        return found if found == ["failed"] else None

    await eventually(given_up)
    assert len(receiver.received(down)) == MAX_ATTEMPTS
    assert all(attempt.signed for attempt in receiver.received(down))

    # The worker goes on after giving up.
    await _publish(infra, _task_failed(healthy.user_id, "t-3"))
    later = await _hooks(receiver, up, 2)
    assert later[1].payload["values"][0] == "t-3"


async def test_a_webhook_url_that_cannot_be_used_is_refused_with_a_clear_message(
    world: World,
) -> None:
    console, _ = await create_user(world.root, quota=0)
    world.consoles.append(console)
    for url in ("ftp://example.com/hook", "http://", "not a url"):
        body = await console.envelope(
            "PUT", "/api/user/setting", json={"notify_type": "webhook", "webhook_url": url}
        )
        assert body["success"] is False
        assert "webhook_url must be an http:// or https:// URL" in body["message"]
    body = await console.envelope("PUT", "/api/user/setting", json={"notify_type": "webhook"})
    assert body["success"] is False and "webhook_url is required" in body["message"]
