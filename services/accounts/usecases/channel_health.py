"""Use cases for channel health: channels with their keys for tests and balance queries, and the
recording of what a test or a balance query measured (upstream `controller/channel-test.go`,
`controller/channel-billing.go`).

The tests themselves run elsewhere (the console for manual runs, the tasks service for the
scheduled ones): accounts only applies the auto-disable / auto-enable rules, so a channel's state
changes in one place, with the routing version bumped and change events published as for the
relay's reports.
"""

from __future__ import annotations

from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts import channel_rules, channels_repo, events
from services.accounts.deps import Deps, now
from services.accounts.metrics import CHANNELS_AUTO_DISABLED, KEYS_AUTO_DISABLED
from services.accounts.records import ChannelKeyRecord, ChannelRecord
from services.accounts.types import Conn
from services.accounts.usecases.channels import lock_channel_key, with_keys
from services.shared.errors import NotFound
from services.shared.statuses import ChannelStatus

ENABLED = ChannelStatus.ENABLED
MANUALLY_DISABLED = ChannelStatus.MANUALLY_DISABLED
AUTO_DISABLED = ChannelStatus.AUTO_DISABLED
MAX_ERROR_LENGTH = 500


async def get_probe_channels(deps: Deps, request: pb.GetProbeChannelsRequest) -> pb.ProbeChannels:
    async with deps.pool.acquire() as conn:
        if request.all:
            rows = await channels_repo.all_channels(conn)
        else:
            rows = await channels_repo.channels_by_ids(conn, channel_ids=list(request.ids))
        return pb.ProbeChannels(channels=await with_keys(conn, rows, box=deps.box, reveal="plain"))


async def record_channel_test(
    deps: Deps, request: pb.RecordChannelTestRequest
) -> pb.RecordChannelTestResponse:
    async with deps.pool.acquire() as conn, conn.transaction():
        channel, key = await lock_channel_key(conn, request.channel_id, request.key_id)
        reply, reason = await _apply_test(conn, request, channel, key)
        await channels_repo.record_test(
            conn, channel_id=channel.id, test_time=now(),
            response_time=request.response_ms,
        )  # fmt: skip
        changed = reply.key_disabled or reply.key_enabled or reply.channel_enabled
        version = 0
        if changed:
            version = await channels_repo.bump_version(conn, channel_ids=[channel.id])
    if changed:
        publisher = deps.events
        await publisher.changed(events.CHANNEL, ids=[channel.id], routing_version=version)
        await publisher.channel_state(
            channel_id=channel.id, key_id=key.id, channel_name=channel.name,
            enabled=not reply.key_disabled, reason=reason if reply.key_disabled else "",
        )  # fmt: skip
    return reply


async def record_channel_balance(
    deps: Deps, request: pb.RecordChannelBalanceRequest
) -> pb.RecordChannelBalanceResponse:
    updated = now()
    async with deps.pool.acquire() as conn:
        found = await channels_repo.record_balance(
            conn, channel_id=request.channel_id, balance=request.balance, now=updated
        )
    if not found:
        raise NotFound("channel not found")
    return pb.RecordChannelBalanceResponse(balance_updated_time=updated)


async def _apply_test(
    conn: Conn,
    request: pb.RecordChannelTestRequest,
    channel: ChannelRecord,
    key: ChannelKeyRecord,
) -> tuple[pb.RecordChannelTestResponse, str]:
    """Apply the test's verdict to the key and the channel; a channel an admin disabled by
    hand is never touched."""
    options = await channels_repo.all_options(conn)
    failure = None
    if not request.success:
        failure = channel_rules.Failure(
            channel_type=channel.type, status_code=request.status_code,
            error_type=request.error_type, error_code=request.error_code,
            error_message=request.error_message, local_error=request.local_error,
        )  # fmt: skip
    by_hand = channel.status == MANUALLY_DISABLED
    verdict = channel_rules.judge_test(
        failure,
        response_ms=request.response_ms,
        threshold_seconds=channel_rules.parse_threshold(options.get("ChannelDisableThreshold")),
        keywords=channel_rules.parse_keywords(options.get("AutomaticDisableKeywords")),
        auto_disable=options.get("AutomaticDisableChannelEnabled") == "true" and channel.auto_ban,
        auto_enable=options.get("AutomaticEnableChannelEnabled") == "true",
        key_enabled=key.status == ENABLED and not by_hand,
        key_auto_disabled=key.status == AUTO_DISABLED and not by_hand,
    )
    reason = verdict.reason[:MAX_ERROR_LENGTH]
    reply = pb.RecordChannelTestResponse(too_slow=verdict.too_slow)
    status = key.status
    if verdict.disable_key:
        status, reply.key_disabled = AUTO_DISABLED, True
        KEYS_AUTO_DISABLED.inc()
    elif verdict.enable_key:
        status, reply.key_enabled = ENABLED, True
    await channels_repo.record_test_key(
        conn, key_id=key.id, status=status, error="" if failure is None else reason
    )
    keys = await channels_repo.channel_keys(conn, channel_id=channel.id)
    any_enabled = any(key_row.status == ENABLED for key_row in keys)
    if reply.key_disabled and not any_enabled and channel.status == ENABLED:
        await channels_repo.set_channel_status(
            conn, channel_id=channel.id, status=AUTO_DISABLED,
            reason=f"all keys disabled by a channel test: {reason}"[:MAX_ERROR_LENGTH], now=now(),
        )  # fmt: skip
        reply.channel_disabled = True
        CHANNELS_AUTO_DISABLED.inc()
    elif (
        channel.status == AUTO_DISABLED
        and any_enabled
        and failure is None
        and not verdict.too_slow
        and options.get("AutomaticEnableChannelEnabled") == "true"
    ):
        await channels_repo.set_channel_status(
            conn, channel_id=channel.id, status=ENABLED, reason="", now=now()
        )
        reply.channel_enabled = True
    return reply, reason
