"""Channel tests and balance refreshes end to end: read the channel with its keys from accounts,
call the upstream (probe.py), record the result in accounts, which applies the
auto-disable / auto-enable rules and tells the relays.

Used by the console for manual runs and by the tasks service for the scheduled ones
(CHANNEL_TEST_FREQUENCY, CHANNEL_UPDATE_FREQUENCY), so both follow the same rules.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import grpc
from veloera.accounts.v1 import accounts_pb2

from services.relay.health import probe as channel_probe
from services.relay.health.probe import KeyTestResult, ProbeError

if TYPE_CHECKING:
    from veloera.accounts.v1.accounts_pb2_grpc import AccountsServiceAsyncStub

logger = logging.getLogger(__name__)

ENABLED = accounts_pb2.CHANNEL_STATUS_ENABLED
MANUALLY_DISABLED = accounts_pb2.CHANNEL_STATUS_MANUALLY_DISABLED


@dataclass(frozen=True, slots=True)
class Probing:
    """How probes are made: the HTTP session, the per-call upstream timeout, the RPC timeout
    and whether private upstream addresses are allowed (CHANNEL_PRIVATE_ADDRESSES)."""

    accounts: AccountsServiceAsyncStub
    session: aiohttp.ClientSession
    timeout: float
    rpc_timeout: float
    allow_private: bool
    pause: float = 0.0  # POLLING_INTERVAL: seconds between channels in test-all / update-all


@dataclass(slots=True)
class ChannelTest:
    """A tested channel: one result per tested key and what accounts changed."""

    channel_id: int
    model: str
    results: list[KeyTestResult] = field(default_factory=list)
    disabled: bool = False  # the channel was disabled by this test
    enabled: bool = False  # the channel was re-enabled by this test
    too_slow: bool = False

    @property
    def success(self) -> bool:
        return bool(self.results) and all(r.success for r in self.results) and not self.too_slow

    @property
    def response_ms(self) -> int:
        return max((r.response_ms for r in self.results), default=0)


async def load_channel(probing: Probing, channel_id: int) -> accounts_pb2.Channel:
    reply = await probing.accounts.GetProbeChannels(
        accounts_pb2.GetProbeChannelsRequest(ids=[channel_id]), timeout=probing.rpc_timeout
    )
    if not reply.channels:
        raise ProbeError("channel not found")
    return reply.channels[0]


async def load_all(probing: Probing) -> list[accounts_pb2.Channel]:
    reply = await probing.accounts.GetProbeChannels(
        accounts_pb2.GetProbeChannelsRequest(all=True), timeout=probing.rpc_timeout
    )
    return list(reply.channels)


def keys_to_test(
    channel: accounts_pb2.Channel, key_index: int | None
) -> list[accounts_pb2.ChannelKey]:
    """One key by index, or every key that is not disabled by hand (each key of a multi-key
    channel is tested, so each can be disabled or re-enabled on its own)."""
    if key_index is not None:
        chosen = [key for key in channel.keys if key.index == key_index]
        if not chosen:
            raise ProbeError(f"the channel has no key with index {key_index}")
        return chosen
    return [key for key in channel.keys if key.status != MANUALLY_DISABLED]


async def run_channel_test(
    probing: Probing,
    channel: accounts_pb2.Channel,
    *,
    model: str = "",
    key_index: int | None = None,
) -> ChannelTest:
    """Test the channel's keys concurrently (each call bounded by the probe timeout) and record
    every result in accounts."""
    keys = keys_to_test(channel, key_index)
    if not keys:
        raise ProbeError("the channel has no key to test")
    chosen = channel_probe.pick_test_model(channel, model)
    outcome = ChannelTest(channel.id, chosen)
    results = await asyncio.gather(
        *(
            channel_probe.probe_key(
                probing.session,
                channel,
                key,
                model=chosen,
                timeout=probing.timeout,
                allow_private=probing.allow_private,
            )
            for key in keys
        )
    )
    for result in results:
        outcome.results.append(result)
        reply = await probing.accounts.RecordChannelTest(
            accounts_pb2.RecordChannelTestRequest(
                channel_id=channel.id, key_id=result.key_id, success=result.success,
                status_code=result.status_code, error_type=result.error_type,
                error_code=result.error_code, error_message=result.message,
                response_time_ms=result.response_ms, local_error=result.local_error,
            ),
            timeout=probing.rpc_timeout,
        )  # fmt: skip
        outcome.disabled |= reply.channel_disabled
        outcome.enabled |= reply.channel_enabled
        outcome.too_slow |= reply.too_slow
    return outcome


async def run_all_tests(probing: Probing) -> int:
    """upstream `testAllChannels`: every channel in turn; a channel that cannot be tested is
    logged and skipped. Returns how many channels were tested."""
    tested = 0
    for index, channel in enumerate(await load_all(probing)):
        if index and probing.pause:
            await asyncio.sleep(probing.pause)
        try:
            outcome = await run_channel_test(probing, channel)
        except ProbeError as exc:
            logger.info("channel %d not tested: %s", channel.id, exc)
            continue
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            continue  # deleted, or its keys replaced, while the run went on
        tested += 1
        if outcome.disabled or outcome.enabled:
            logger.info(
                "channel test changed a channel",
                extra={"channel_id": channel.id, "enabled": outcome.enabled},
            )
    return tested


async def update_balance(probing: Probing, channel: accounts_pb2.Channel) -> tuple[float, int]:
    """Query and store the channel's balance: (USD, the time it was stored)."""
    balance = await channel_probe.query_balance(
        probing.session, channel, timeout=probing.timeout, allow_private=probing.allow_private
    )
    reply = await probing.accounts.RecordChannelBalance(
        accounts_pb2.RecordChannelBalanceRequest(channel_id=channel.id, balance=balance),
        timeout=probing.rpc_timeout,
    )
    return balance, reply.balance_updated_time


async def update_all_balances(probing: Probing) -> int:
    """upstream `updateAllChannelsBalance`: enabled channels whose type has a balance query."""
    updated = 0
    for channel in await load_all(probing):
        if channel.status != ENABLED or channel.type not in channel_probe.BALANCE_TYPES:
            continue
        if updated and probing.pause:
            await asyncio.sleep(probing.pause)
        try:
            await update_balance(probing, channel)
        except ProbeError as exc:
            logger.info("channel %d balance not updated: %s", channel.id, exc)
            continue
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            continue  # deleted while the run went on
        updated += 1
    return updated
