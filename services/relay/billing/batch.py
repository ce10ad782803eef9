"""Buffers the relay's settlements and releases into SettleBatch calls (size or time bound)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from veloera.billing.v1 import billing_pb2

# Called with a batch and the monotonic time its oldest item was queued (the durability clock).
Send = Callable[[billing_pb2.SettleBatchRequest, float], Awaitable[None]]


class SettleBatcher:
    """Collects items; a batch goes out when it has `max_items` or its first item waited
    `window` seconds. At most `max_pending` items are buffered or in flight: beyond that an
    item is handed to `overflow` (the durable JetStream fallback) at once. An item counts as
    pending until the call it went out with returned: `drain` waits for exactly that."""

    def __init__(
        self,
        send: Send,
        *,
        overflow: Send,
        window: float,
        max_items: int,
        max_pending: int,
    ) -> None:
        self._send = send
        self._overflow = overflow
        self._window = window
        self._max_items = max(max_items, 1)
        self._max_pending = max(max_pending, self._max_items)
        self._settlements: list[billing_pb2.SettleRequest] = []
        self._releases: list[billing_pb2.ReleaseRequest] = []
        self._returns: list[str] = []
        self._oldest = 0.0  # when the first buffered item was queued
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0

    @property
    def pending(self) -> int:
        return len(self._settlements) + len(self._releases) + self._in_flight

    def add(
        self,
        *,
        settlement: billing_pb2.SettleRequest | None = None,
        release: billing_pb2.ReleaseRequest | None = None,
    ) -> None:
        if self.pending >= self._max_pending:
            single = billing_pb2.SettleBatchRequest(
                settlements=[settlement] if settlement is not None else [],
                releases=[release] if release is not None else [],
            )
            self._spawn(self._overflow(single, time.monotonic()), 0)
            return
        if not self._settlements and not self._releases:
            self._oldest = time.monotonic()
        if settlement is not None:
            self._settlements.append(settlement)
        if release is not None:
            self._releases.append(release)
        if len(self._settlements) + len(self._releases) >= self._max_items or self._window <= 0:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._window, self.flush)

    def add_return(self, lease_id: str) -> None:
        """A lease this replica is done with; billing returns it after the batch's items."""
        self._returns.append(lease_id)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._window, self.flush)

    def flush(self) -> None:
        """Send what is buffered now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._settlements and not self._releases and not self._returns:
            return
        batch = billing_pb2.SettleBatchRequest(
            settlements=self._settlements, releases=self._releases, return_leases=self._returns
        )
        size = len(self._settlements) + len(self._releases)
        self._settlements, self._releases, self._returns = [], [], []
        self._in_flight += size
        queued_at = self._oldest if size else time.monotonic()
        self._spawn(self._send(batch, queued_at), size)

    def _spawn(self, call: Awaitable[None], size: int) -> None:
        async def run() -> None:
            try:
                await call
            finally:
                self._in_flight -= size

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float) -> None:
        """Flush and wait for every batch in flight (on shutdown)."""
        self.flush()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
