"""Channel tests and balance refreshes end to end: read the channel with its keys from accounts,
call the upstream (probe.py), record the result in accounts, which applies the
auto-disable / auto-enable rules and tells the relays.

The relay makes them when the console (manual runs) or the tasks service (scheduled runs) asks
over NATS (responder.py), so both follow the same rules.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from veloera.accounts.v1 import accounts_pb2

from services.relay.health import probe as channel_probe
from services.relay.health.probe import KeyTestResult, ProbeError

if TYPE_CHECKING:
    from veloera.accounts.v1.accounts_pb2_grpc import RelayAccountsServiceAsyncStub

MANUALLY_DISABLED = accounts_pb2.CHANNEL_STATUS_MANUALLY_DISABLED


class ChannelNotFound(Exception):
    """The channel does not exist (any more)."""


@dataclass(frozen=True, slots=True)
class Probing:
    """How probes are made: the HTTP session, the per-call upstream timeout, the RPC timeout
    and whether private upstream addresses are allowed (CHANNEL_PRIVATE_ADDRESSES)."""

    accounts: RelayAccountsServiceAsyncStub
    session: aiohttp.ClientSession
    timeout: float
    rpc_timeout: float
    allow_private: bool


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
        raise ChannelNotFound(channel_id)
    return reply.channels[0]


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
                response_ms=result.response_ms, local_error=result.local_error,
            ),
            timeout=probing.rpc_timeout,
        )  # fmt: skip
        outcome.disabled |= reply.channel_disabled
        outcome.enabled |= reply.channel_enabled
        outcome.too_slow |= reply.too_slow
    return outcome


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
