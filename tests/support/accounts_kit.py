"""Accounts over gRPC: stubs, users, errors and change events as the integration tests use them."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc
import nats
import pytest
import pytest_asyncio
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy
from nats.js.client import JetStreamContext
from veloera.accounts.v1 import accounts_pb2 as pb
from veloera.accounts.v1 import events_pb2

from services.accounts.channel_rules import DEFAULT_DISABLE_KEYWORDS
from services.shared import subjects
from tests.support.clients import AccountsClient
from tests.support.helpers import ROOT_PASSWORD, ROOT_USERNAME, admin_channel
from tests.support.infra import Infra

if TYPE_CHECKING:
    Stub = AccountsClient


PASSWORD = "password123"


TIMEOUT = 10.0


def unique(prefix: str) -> str:
    """A unique name of at most 12 characters."""
    return f"{prefix[:4]}{uuid.uuid4().hex[:8]}"


async def ensure_root(stub: Stub) -> pb.User:
    """Run Setup when the database is fresh, otherwise log in as the root created earlier."""
    status = await stub.GetSetupStatus(pb.GetSetupStatusRequest(), timeout=TIMEOUT)
    if not status.initialized:
        request = pb.SetupRequest(username=ROOT_USERNAME, password=ROOT_PASSWORD)
        return await stub.Setup(request, timeout=TIMEOUT)
    login = pb.LoginRequest(username=ROOT_USERNAME, password=ROOT_PASSWORD)
    return (await stub.Login(login, timeout=TIMEOUT)).user


async def make_user(
    stub: Stub, actor: pb.User, *, role: pb.Role.ValueType = pb.ROLE_COMMON, prefix: str = "u"
) -> pb.User:

    request = pb.CreateUserRequest(
        actor_id=actor.id, username=unique(prefix), password=PASSWORD, role=role
    )
    return await stub.CreateUser(request, timeout=TIMEOUT)


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def channel_message(**fields: Any) -> pb.Channel:
    defaults: dict[str, Any] = {
        "type": 1,
        "name": unique("ch"),
        "key": "sk-first-key-aaaa\nsk-second-key-bbbb",
        "models": ["gpt-4o", "GPT-4o"],
        "groups": ["default", "vip"],
        "priority": 5,
        "weight": 3,
        "auto_ban": True,
    }
    return pb.Channel(**{**defaults, **fields})


async def next_event(
    sub: Subscription, match: Callable[[events_pb2.ChangeEvent], bool]
) -> events_pb2.ChangeEvent:
    """The first change event `match` accepts (other tests' events are skipped)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        msg = await sub.next_msg(timeout=max(deadline - time.monotonic(), 0.1))
        event = events_pb2.ChangeEvent.FromString(msg.data)
        if match(event):
            return event


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def stub(accounts_addr: str) -> AsyncIterator[Stub]:
    async with admin_channel(accounts_addr) as channel:
        yield AccountsClient(channel)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def root(stub: Stub) -> pb.User:
    return await ensure_root(stub)


@pytest_asyncio.fixture(loop_scope="session")
async def state_events(infra: Infra) -> AsyncIterator[JetStreamContext.PushSubscription]:
    """Channel state events published from now on, read from JetStream."""
    nc = await nats.connect(infra.nats_url)
    js = nc.jetstream()
    sub = await js.subscribe(
        subjects.CHANNEL_STATE_SUBJECT, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
    )
    yield sub
    await nc.drain()


async def _next_state(
    sub: JetStreamContext.PushSubscription, channel_id: int
) -> events_pb2.ChannelStateEvent:
    deadline = time.monotonic() + TIMEOUT
    while True:
        msg = await sub.next_msg(timeout=max(deadline - time.monotonic(), 0.1))
        event = events_pb2.ChannelStateEvent.FromString(msg.data)
        if event.channel_id == channel_id:
            return event


async def _option(stub: Stub, root: pb.User, key: str, value: str) -> None:
    await stub.UpdateOption(
        pb.UpdateOptionRequest(actor_id=root.id, key=key, value=value), timeout=TIMEOUT
    )


@pytest_asyncio.fixture(loop_scope="session")
async def auto(stub: Stub, root: pb.User) -> AsyncIterator[None]:
    """Auto-disable on, auto-enable off, default keywords; restored afterwards."""
    await _option(stub, root, "AutomaticDisableChannelEnabled", "true")
    await _option(stub, root, "AutomaticEnableChannelEnabled", "false")
    await _option(stub, root, "AutomaticDisableKeywords", "\n".join(DEFAULT_DISABLE_KEYWORDS))
    yield
    await _option(stub, root, "AutomaticEnableChannelEnabled", "false")
    await _option(stub, root, "AutomaticDisableKeywords", "\n".join(DEFAULT_DISABLE_KEYWORDS))


async def _channel(stub: Stub, root: pb.User, **fields: Any) -> pb.Channel:
    return await stub.SaveChannel(
        pb.SaveChannelRequest(actor_id=root.id, channel=channel_message(**fields)),
        timeout=TIMEOUT,
    )


async def _get(stub: Stub, channel: pb.Channel) -> pb.Channel:
    return await stub.GetChannel(pb.GetChannelRequest(id=channel.id), timeout=TIMEOUT)


async def _routable(stub: Stub, channel: pb.Channel) -> list[bool]:
    snapshot = await stub.GetRoutingSnapshot(pb.GetRoutingSnapshotRequest(), timeout=TIMEOUT)
    return [a.enabled for a in snapshot.abilities if a.channel_id == channel.id]
