"""The routing state held by the relay: a full snapshot at start, then deltas.

A change event (or the poll) makes the relay ask accounts for what changed since the version it
holds (GetRoutingDelta) and patch its table in place on the event loop, a few channels at a
time; events may arrive late, out of order or not at all, the version alone says what is
missing. When accounts answers "resync" (the relay is too far behind, or a change touched too
much), the full snapshot is decoded and indexed in a worker thread and the reference swapped.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import grpc
from veloera.accounts.v1 import accounts_pb2, accounts_pb2_grpc

from services.relay.metrics import CHANNELS, KEYS, ROUTING_APPLY_SECONDS, ROUTING_UPDATES
from services.relay.routing.table import RoutingTable

logger = logging.getLogger(__name__)

DELTA_TIMEOUT = 5.0
SNAPSHOT_TIMEOUT = 60.0  # thousands of channels x their models: seconds to build and send
APPLY_SLICE_SECONDS = 0.002  # event-loop time a delta takes before letting requests run
_RELAY_ACCOUNTS = accounts_pb2.DESCRIPTOR.services_by_name["RelayAccountsService"]
SNAPSHOT_METHOD = f"/{_RELAY_ACCOUNTS.full_name}/GetRoutingSnapshot"


class SnapshotStore:
    """Owns the current RoutingTable: patched by deltas, replaced by full snapshots."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = accounts_pb2_grpc.RelayAccountsServiceStub(channel)
        # No response deserializer: the bytes are decoded in the worker thread, not on the loop.
        self._snapshot_bytes: grpc.aio.UnaryUnaryMultiCallable[
            accounts_pb2.GetRoutingSnapshotRequest, bytes
        ] = channel.unary_unary(
            SNAPSHOT_METHOD,
            request_serializer=accounts_pb2.GetRoutingSnapshotRequest.SerializeToString,
        )
        self._lock = asyncio.Lock()
        self.table: RoutingTable | None = None

    @property
    def version(self) -> int:
        return self.table.version if self.table is not None else -1

    async def refresh(self) -> None:
        """Catch up with accounts: a delta when it has one for our version, else a snapshot."""
        async with self._lock:
            table = self.table
            if table is None:
                await self._load_full()
                return
            delta = await self._stub.GetRoutingDelta(
                accounts_pb2.GetRoutingDeltaRequest(since_version=table.version),
                timeout=DELTA_TIMEOUT,
            )
            if delta.resync:
                await self._load_full()
            elif delta.version != table.version:
                await _apply(table, delta)
                ROUTING_UPDATES.labels("delta").inc()
                _observe(table)

    async def _load_full(self) -> None:
        data = await self._snapshot_bytes(
            accounts_pb2.GetRoutingSnapshotRequest(), timeout=SNAPSHOT_TIMEOUT
        )
        # Decoded, then indexed, in a worker thread; the wire bytes go before the index is
        # built and the decoded message right after, so the peak holds one copy at a time.
        snapshot = await asyncio.to_thread(accounts_pb2.RoutingSnapshot.FromString, data)
        del data
        table = await asyncio.to_thread(RoutingTable.from_snapshot, snapshot)
        del snapshot
        self.table = table
        # Long-lived like start-up's objects (services/shared/gctune.py): keep its million
        # objects out of the collector's full passes; the old table goes by reference counting.
        gc.freeze()
        ROUTING_UPDATES.labels("full").inc()
        _observe(table)
        logger.info(
            "routing snapshot loaded",
            extra={"version": table.version, "channels": len(table.channels)},
        )

    async def load_initial(self, timeout: float) -> None:
        """Retry until accounts answers; raise TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.refresh()
                return
            except grpc.aio.AioRpcError as exc:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"accounts did not answer GetRoutingSnapshot within {timeout}s"
                    ) from exc
                logger.info("waiting for accounts: %s", exc.code().name)
                await asyncio.sleep(0.5)

    async def poll_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.refresh_quietly()

    async def refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except grpc.aio.AioRpcError as exc:
            logger.warning("routing refresh failed: %s", exc.code().name)
        except Exception:
            logger.exception("routing refresh failed")


async def _apply(table: RoutingTable, delta: accounts_pb2.RoutingDelta) -> None:
    """Patch `table` channel by channel, yielding to requests every APPLY_SLICE_SECONDS."""
    busy = 0.0
    started = time.perf_counter()
    for _ in table.apply_delta(delta):
        if time.perf_counter() - started > APPLY_SLICE_SECONDS:
            busy += time.perf_counter() - started
            await asyncio.sleep(0)
            started = time.perf_counter()
    ROUTING_APPLY_SECONDS.observe(busy + time.perf_counter() - started)


def _observe(table: RoutingTable) -> None:
    CHANNELS.labels("enabled").set(table.enabled_channels)
    CHANNELS.labels("unavailable").set(len(table.channels) - table.enabled_channels)
    KEYS.set(table.keys)
