"""Channel tests, balance queries and model lists asked of the relays (CHANNEL_PROBE over NATS
request/reply; relay.v1 messages), and the runs over every channel (upstream
`controller/channel-test.go: testAllChannels`, `controller/channel-billing.go:
updateAllChannelsBalance`).

The console (manual runs) and the tasks service (scheduled runs) use this module; the relay
answers, because it owns the adaptors and may read channel keys: a test sends exactly what a
relayed request would, and neither caller sees a key. Accounts applies the auto-disable and
auto-enable rules to what the relay records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import nats.errors
from nats.aio.client import Client as NATS
from veloera.accounts.v1 import accounts_pb2
from veloera.relay.v1 import relay_pb2

from services.shared import subjects
from services.shared.channel_types import BALANCE_TYPES

if TYPE_CHECKING:
    from veloera.accounts.v1.accounts_pb2_grpc import AccountsServiceAsyncStub

logger = logging.getLogger(__name__)

# On top of the probe timeout (each upstream call): accounts' reads and writes around it.
ANSWER_MARGIN = 10.0
PAGE_SIZE = 100
ENABLED = accounts_pb2.CHANNEL_STATUS_ENABLED


class ProbeUnavailable(Exception):
    """No answer: NATS is not connected, no relay is running, or none answered in time."""


class ProbeFailed(Exception):
    """The relay answered that the probe could not be made or its answer was unusable."""


class ChannelGone(ProbeFailed):
    """The channel does not exist (any more)."""


class ProbeClient:
    """Asks a relay (one of the queue group) to probe a channel and waits for its answer."""

    def __init__(self, nc: Callable[[], NATS | None], probe_timeout: float) -> None:
        self._nc = nc
        self.timeout = probe_timeout + ANSWER_MARGIN

    async def ask(self, request: relay_pb2.ChannelProbeRequest) -> relay_pb2.ChannelProbeResponse:
        nc = self._nc()
        if nc is None or not nc.is_connected:
            raise ProbeUnavailable(
                "channel probes need the relays over NATS, which is not connected"
            )
        try:
            reply = await nc.request(
                subjects.CHANNEL_PROBE, request.SerializeToString(), timeout=self.timeout
            )
        except nats.errors.NoRespondersError:
            raise ProbeUnavailable("no relay is running to send the probe") from None
        except (nats.errors.Error, TimeoutError):
            raise ProbeUnavailable("no relay answered the probe in time") from None
        answer = relay_pb2.ChannelProbeResponse.FromString(reply.data)
        if answer.not_found:
            raise ChannelGone(answer.error or "channel not found")
        if answer.error:
            raise ProbeFailed(answer.error)
        return answer

    async def test(
        self, channel_id: int, *, model: str = "", key_index: int | None = None
    ) -> relay_pb2.ChannelProbeResponse:
        probe = relay_pb2.ChannelTestProbe(channel_id=channel_id, model=model)
        if key_index is not None:
            probe.key_index = key_index
        return await self.ask(relay_pb2.ChannelProbeRequest(test=probe))

    async def balance(self, channel_id: int) -> relay_pb2.ChannelProbeResponse:
        ref = relay_pb2.ChannelRef(channel_id=channel_id)
        return await self.ask(relay_pb2.ChannelProbeRequest(balance=ref))

    async def models(self, channel_id: int) -> list[str]:
        ref = relay_pb2.ChannelRef(channel_id=channel_id)
        return list((await self.ask(relay_pb2.ChannelProbeRequest(models=ref))).models)

    async def unsaved_models(self, channel_type: int, base_url: str, key: str) -> list[str]:
        unsaved = relay_pb2.UnsavedChannel(type=channel_type, base_url=base_url, key=key)
        return list((await self.ask(relay_pb2.ChannelProbeRequest(unsaved_models=unsaved))).models)


def tested_ok(answer: relay_pb2.ChannelProbeResponse) -> bool:
    """Every tested key answered, fast enough."""
    return bool(answer.results) and all(r.success for r in answer.results) and not answer.too_slow


async def channel_ids(
    accounts: AccountsServiceAsyncStub,
    rpc_timeout: float,
    *,
    statuses: Sequence[accounts_pb2.ChannelStatus.ValueType] = (),
    types: Sequence[int] = (),
) -> list[int]:
    """The ids of every channel (of these statuses and types, when given), read in pages."""
    found: set[int] = set()
    page = 1
    while True:
        request = accounts_pb2.ListChannelsRequest(
            page=page, page_size=PAGE_SIZE, statuses=statuses, types=types
        )
        reply = await accounts.ListChannels(request, timeout=rpc_timeout)
        found.update(channel.id for channel in reply.channels)
        if len(reply.channels) < PAGE_SIZE:
            return sorted(found)
        page += 1


async def _each(
    ids: list[int],
    pause: float,
    name: str,
    run: Callable[[int], Awaitable[relay_pb2.ChannelProbeResponse]],
) -> int:
    """`run` for each channel in turn, `pause` seconds apart; a channel that cannot be probed
    is logged and skipped, one that is gone is skipped. Returns how many were probed."""
    done = 0
    for index, channel_id in enumerate(ids):
        if index and pause:
            await asyncio.sleep(pause)
        try:
            answer = await run(channel_id)
        except ChannelGone:
            continue  # deleted, or its keys replaced, while the run went on
        except ProbeFailed as exc:
            logger.info("channel %d: %s not made: %s", channel_id, name, exc)
            continue
        done += 1
        if answer.channel_disabled or answer.channel_enabled:
            logger.info(
                "channel test changed a channel",
                extra={"channel_id": channel_id, "enabled": answer.channel_enabled},
            )
    return done


async def run_all_tests(
    client: ProbeClient, accounts: AccountsServiceAsyncStub, rpc_timeout: float, pause: float
) -> int:
    """upstream `testAllChannels`: every channel in turn (those disabled by hand included: the
    rules keep them off). Returns how many channels were tested."""
    ids = await channel_ids(accounts, rpc_timeout)
    return await _each(ids, pause, "test", lambda channel_id: client.test(channel_id))


async def update_all_balances(
    client: ProbeClient, accounts: AccountsServiceAsyncStub, rpc_timeout: float, pause: float
) -> int:
    """upstream `updateAllChannelsBalance`: every enabled channel whose type has a balance
    query. Returns how many were updated."""
    ids = await channel_ids(accounts, rpc_timeout, statuses=[ENABLED], types=sorted(BALANCE_TYPES))
    return await _each(ids, pause, "balance query", client.balance)
