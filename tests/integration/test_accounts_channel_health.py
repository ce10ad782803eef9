"""Accounts' channel-health RPCs over gRPC: channels with their keys for probes, recorded tests
(state changes published like the relay's reports) and balances; who may call them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import pytest
import pytest_asyncio
from nats.js.client import JetStreamContext
from veloera.accounts.v1 import accounts_pb2 as pb

from services.shared import internal_auth
from services.shared.config import Secret
from services.shared.grpcutil import open_channel
from tests.support.accounts_kit import (
    TIMEOUT,
    _channel,
    _get,
    _next_state,
    _option,
    _routable,
    auto,
    root,
    rpc_error,
    state_events,
    stub,
)
from tests.support.clients import AccountsClient
from tests.support.helpers import PLANE, RELAY

pytestmark = pytest.mark.integration
__all__ = ["auto", "root", "state_events", "stub"]  # fixtures shared with the auto-disable tests

if TYPE_CHECKING:
    Stub = AccountsClient

TASKS = internal_auth.Credential(
    internal_auth.TASKS, Secret(PLANE[internal_auth.token_variable(internal_auth.TASKS)])
)
WEB = internal_auth.Credential(
    internal_auth.WEB, Secret(PLANE[internal_auth.token_variable(internal_auth.WEB)])
)


@pytest_asyncio.fixture(loop_scope="session")
async def as_relay(accounts_addr: str) -> AsyncIterator[Stub]:
    """Accounts as the relays call it: they make the channel probes and record them."""
    channel = open_channel(accounts_addr, RELAY)
    try:
        yield AccountsClient(channel)
    finally:
        await channel.close()


def _test(channel: pb.Channel, key: pb.ChannelKey, **fields: object) -> pb.RecordChannelTestRequest:
    return pb.RecordChannelTestRequest(channel_id=channel.id, key_id=key.id, **fields)  # type: ignore[arg-type]


async def test_probe_channels_carry_the_plain_keys_and_only_the_relay_gets_them(
    stub: Stub, root: pb.User, as_relay: Stub, accounts_addr: str
) -> None:
    channel = await _channel(stub, root, key="sk-probe-one\nsk-probe-two")
    reply = await as_relay.GetProbeChannels(
        pb.GetProbeChannelsRequest(ids=[channel.id, 987_654_321]), timeout=TIMEOUT
    )
    [got] = reply.channels
    assert [k.key for k in got.keys] == ["sk-probe-one", "sk-probe-two"]
    assert channel.id in [c.id for c in (await as_relay.GetProbeChannels(
        pb.GetProbeChannelsRequest(all=True), timeout=TIMEOUT)).channels]  # fmt: skip

    for credential in (TASKS, WEB):
        other = open_channel(accounts_addr, credential)
        try:
            others = AccountsClient(other)
            for call in (
                others.GetProbeChannels(
                    pb.GetProbeChannelsRequest(ids=[channel.id]), timeout=TIMEOUT
                ),
                others.RecordChannelBalance(
                    pb.RecordChannelBalanceRequest(channel_id=channel.id, balance=1.0),
                    timeout=TIMEOUT,
                ),
            ):
                error = await rpc_error(call)
                assert error.code() == grpc.StatusCode.PERMISSION_DENIED, credential.caller
        finally:
            await other.close()
    error = await rpc_error(as_relay.GetUser(pb.GetUserRequest(id=root.id), timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_recorded_test_changes_state_like_a_relay_report(
    stub: Stub,
    root: pb.User,
    auto: None,
    as_relay: Stub,
    state_events: JetStreamContext.PushSubscription,
) -> None:
    await _option(stub, root, "AutomaticEnableChannelEnabled", "true")
    channel = await _channel(stub, root, key="sk-only-test-key")
    [key] = channel.keys
    reply = await as_relay.RecordChannelTest(
        _test(channel, key, status_code=401, error_message="bad key", response_ms=40),
        timeout=TIMEOUT,
    )
    assert reply.key_disabled and reply.channel_disabled
    got = await _get(stub, channel)
    assert got.status == pb.CHANNEL_STATUS_AUTO_DISABLED and got.response_ms == 40
    routable = await _routable(stub, channel)
    assert routable and not any(routable)
    event = await _next_state(state_events, channel.id)
    assert not event.enabled and "bad key" in event.reason

    reply = await as_relay.RecordChannelTest(
        _test(channel, key, success=True, response_ms=30), timeout=TIMEOUT
    )
    assert reply.key_enabled and reply.channel_enabled
    assert all(await _routable(stub, channel))
    assert (await _next_state(state_events, channel.id)).enabled


async def test_unknown_or_foreign_keys_and_channels_are_not_found(
    stub: Stub, root: pb.User, as_relay: Stub
) -> None:
    one, two = await _channel(stub, root), await _channel(stub, root)
    error = await rpc_error(as_relay.RecordChannelTest(_test(one, two.keys[0]), timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await rpc_error(
        as_relay.RecordChannelBalance(
            pb.RecordChannelBalanceRequest(channel_id=987_654_321, balance=1.0), timeout=TIMEOUT
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    stored = await as_relay.RecordChannelBalance(
        pb.RecordChannelBalanceRequest(channel_id=one.id, balance=3.25), timeout=TIMEOUT
    )
    got = await _get(stub, one)
    assert got.balance == 3.25 and got.balance_updated_time == stored.balance_updated_time > 0
