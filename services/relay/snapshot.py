"""The routing snapshot held by the relay: loaded at start, polled, reloaded on change events."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from veloera.accounts.v1 import accounts_pb2, accounts_pb2_grpc

from services.relay.metrics import CHANNELS, KEYS
from services.relay.routing import RoutingTable

logger = logging.getLogger(__name__)

SNAPSHOT_TIMEOUT = 5.0


class SnapshotStore:
    """Owns the current RoutingTable; replaced atomically, never mutated."""

    def __init__(self, stub: accounts_pb2_grpc.AccountsServiceAsyncStub) -> None:
        self._stub = stub
        self._lock = asyncio.Lock()
        self.table: RoutingTable | None = None

    @property
    def version(self) -> int:
        return self.table.version if self.table is not None else -1

    async def refresh(self) -> None:
        """Fetch the snapshot unless accounts says ours is current."""
        async with self._lock:
            known = self.version
            reply = await self._stub.GetRoutingSnapshot(
                accounts_pb2.GetRoutingSnapshotRequest(known_version=known),
                timeout=SNAPSHOT_TIMEOUT,
            )
            if reply.unchanged and self.table is not None:
                return
            self.table = RoutingTable.from_snapshot(reply)
            _observe(self.table)
            logger.info(
                "routing snapshot loaded",
                extra={"version": reply.version, "channels": len(reply.channels)},
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
            logger.warning("routing snapshot refresh failed: %s", exc.code().name)
        except Exception:
            logger.exception("routing snapshot refresh failed")


def _observe(table: RoutingTable) -> None:
    enabled = sum(1 for c in table.channels.values() if c.enabled)
    CHANNELS.labels("enabled").set(enabled)
    CHANNELS.labels("unavailable").set(len(table.channels) - enabled)
    KEYS.set(sum(len(c.keys) for c in table.channels.values()))
