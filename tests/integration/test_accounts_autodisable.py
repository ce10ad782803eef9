"""Auto-disable / auto-enable of channel keys and channels over gRPC (upstream
`service/channel.go`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import grpc
import pytest
from nats.js.client import JetStreamContext
from veloera.accounts.v1 import accounts_pb2 as pb

from tests.support.accounts_kit import (
    TIMEOUT,
    _channel,
    _get,
    _next_state,
    _option,
    _routable,
    rpc_error,
)
from tests.support.accounts_kit import auto as auto
from tests.support.accounts_kit import root as root
from tests.support.accounts_kit import state_events as state_events
from tests.support.accounts_kit import stub as stub
from tests.support.clients import AccountsClient

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    Stub = AccountsClient

DISABLED = pb.CHANNEL_STATUS_AUTO_DISABLED
ENABLED = pb.CHANNEL_STATUS_ENABLED


class Infra(Protocol):
    nats_url: str


async def _report(
    stub: Stub, channel: pb.Channel, key: pb.ChannelKey, **fields: Any
) -> pb.ReportChannelResultResponse:
    request = pb.ReportChannelResultRequest(channel_id=channel.id, key_id=key.id, **fields)
    return await stub.ReportChannelResult(request, timeout=TIMEOUT)


async def test_a_401_disables_the_key_and_the_last_key_disables_the_channel(
    stub: Stub,
    root: pb.User,
    auto: None,
    state_events: JetStreamContext.PushSubscription,
) -> None:
    channel = await _channel(stub, root)
    first, second = channel.keys
    reply = await _report(stub, channel, first, status_code=401, error_message="invalid key")
    assert reply.key_disabled and not reply.channel_disabled
    got = await _get(stub, channel)
    assert got.status == ENABLED
    assert [k.status for k in got.keys] == [DISABLED, ENABLED]
    assert got.keys[0].last_error == "invalid key"
    assert all(await _routable(stub, channel))
    event = await _next_state(state_events, channel.id)
    assert event.key_id == first.id and not event.enabled and "invalid key" in event.reason
    assert event.channel_name == channel.name

    reply = await _report(
        stub, channel, second, status_code=429, error_type="insufficient_quota",
        error_message="quota gone",
    )  # fmt: skip
    assert reply.key_disabled and reply.channel_disabled
    got = await _get(stub, channel)
    assert got.status == DISABLED
    assert "quota gone" in got.status_reason and got.status_time > 0
    routable = await _routable(stub, channel)
    assert routable and not any(routable)
    event = await _next_state(state_events, channel.id)
    assert event.key_id == second.id and not event.enabled


@pytest.mark.parametrize(
    "failure",
    [
        {"status_code": 400, "error_code": "invalid_api_key", "error_message": "revoked"},
        {"status_code": 429, "error_type": "insufficient_quota", "error_message": "pay up"},
        {"status_code": 400, "error_code": "account_deactivated", "error_message": "gone"},
        {"status_code": 403, "error_type": "permission_error", "error_message": "nope"},
        {"status_code": 429, "error_message": "YOU EXCEEDED YOUR CURRENT QUOTA, check plan"},
        {"status_code": 400, "error_message": "error: permission DENIED for this key"},
    ],
)
async def test_key_killing_failures_disable_the_key(
    stub: Stub, root: pb.User, auto: None, failure: dict[str, Any]
) -> None:
    channel = await _channel(stub, root)
    reply = await _report(stub, channel, channel.keys[0], **failure)
    assert reply.key_disabled and not reply.channel_disabled
    assert (await _get(stub, channel)).keys[0].status == DISABLED


@pytest.mark.parametrize(
    "failure",
    [
        {"status_code": 429, "error_message": "rate limited, slow down"},
        {"status_code": 500, "error_type": "server_error", "error_message": "upstream broke"},
        {"status_code": 403, "error_message": "forbidden region"},  # 403 only counts on Gemini
        {"status_code": 401, "local_error": True, "error_message": "local: bad request"},
    ],
)
async def test_transient_and_local_failures_never_disable(
    stub: Stub, root: pb.User, auto: None, failure: dict[str, Any]
) -> None:
    channel = await _channel(stub, root)
    reply = await _report(stub, channel, channel.keys[0], **failure)
    assert not reply.key_disabled and not reply.channel_disabled
    got = await _get(stub, channel)
    assert got.status == ENABLED and [k.status for k in got.keys] == [ENABLED, ENABLED]
    assert got.keys[0].failure_count == 1 and got.keys[0].request_count == 1


async def test_custom_keywords_replace_the_defaults(stub: Stub, root: pb.User, auto: None) -> None:
    await _option(stub, root, "AutomaticDisableKeywords", "Account Suspended\nbanned tenant")
    channel = await _channel(stub, root)
    first, second = channel.keys
    default_only = await _report(
        stub, channel, first, status_code=400, error_message="Permission denied"
    )
    assert not default_only.key_disabled
    custom = await _report(
        stub, channel, second, status_code=400, error_message="your ACCOUNT was suspended!"
    )
    assert not custom.key_disabled  # the whole phrase must appear
    custom = await _report(
        stub, channel, second, status_code=400, error_message="x: ACCOUNT SUSPENDED"
    )
    assert custom.key_disabled


async def test_auto_ban_off_or_option_off_never_disables(
    stub: Stub, root: pb.User, auto: None, saved_options: None
) -> None:
    no_ban = await _channel(stub, root, auto_ban=False)
    reply = await _report(stub, no_ban, no_ban.keys[0], status_code=401, error_message="bad")
    assert not reply.key_disabled
    assert (await _get(stub, no_ban)).keys[0].status == ENABLED

    channel = await _channel(stub, root)
    await _option(stub, root, "AutomaticDisableChannelEnabled", "false")
    reply = await _report(stub, channel, channel.keys[0], status_code=401, error_message="x")
    assert not reply.key_disabled
    assert (await _get(stub, channel)).keys[0].status == ENABLED


async def _disabled_channel(stub: Stub, root: pb.User) -> pb.Channel:
    channel = await _channel(stub, root, key="sk-only-key-zzzz")
    reply = await _report(stub, channel, channel.keys[0], status_code=401, error_message="bad")
    assert reply.channel_disabled
    return channel


async def test_success_re_enables_only_when_auto_enable_is_on(
    stub: Stub,
    root: pb.User,
    auto: None,
    state_events: JetStreamContext.PushSubscription,
) -> None:
    channel = await _disabled_channel(stub, root)
    assert not (await _next_state(state_events, channel.id)).enabled
    await _report(stub, channel, channel.keys[0], success=True, latency_ms=120)
    got = await _get(stub, channel)
    assert got.status == DISABLED and got.keys[0].status == DISABLED

    await _option(stub, root, "AutomaticEnableChannelEnabled", "true")
    await _report(stub, channel, channel.keys[0], success=True, latency_ms=120)
    got = await _get(stub, channel)
    assert got.status == ENABLED and got.keys[0].status == ENABLED
    assert got.status_reason == ""
    assert all(await _routable(stub, channel))
    event = await _next_state(state_events, channel.id)
    assert event.enabled and event.key_id == channel.keys[0].id


async def test_a_manually_disabled_channel_stays_disabled(
    stub: Stub, root: pb.User, auto: None
) -> None:
    await _option(stub, root, "AutomaticEnableChannelEnabled", "true")
    channel = await _channel(stub, root, status=pb.CHANNEL_STATUS_MANUALLY_DISABLED)
    await _report(stub, channel, channel.keys[0], success=True)
    assert (await _get(stub, channel)).status == pb.CHANNEL_STATUS_MANUALLY_DISABLED


async def test_reports_for_unknown_or_foreign_keys_are_refused(
    stub: Stub, root: pb.User, auto: None
) -> None:
    one, two = await _channel(stub, root), await _channel(stub, root)
    error = await rpc_error(_report(stub, one, two.keys[0], status_code=401))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    missing = pb.ChannelKey(id=987_654_321)
    error = await rpc_error(_report(stub, one, missing, status_code=401))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    got = await _get(stub, one)
    assert [k.status for k in got.keys] == [ENABLED, ENABLED]
    assert [k.request_count for k in got.keys] == [0, 0]
