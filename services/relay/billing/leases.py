"""Quota leases on the relay side (on unless BILLING_LEASES=false): requests are held locally
against a lease billing granted to this replica, so the request path makes no blocking RPC
while the lease lasts. The lease was carved out of the wallet (and the token budget) by
billing, so no replica can overdraw; the local holds only decide which requests fit in it.

One lease per (user, token, model, group, requested model). A lease serves new requests until
it expires or runs short; it is then retired and returned (through the settle batch) once its
last in-flight request has settled or been released. Its successor is acquired in the
background before that (a quarter left, or its last seconds), sized to cover LEASE_SECONDS of
the traffic seen, so a busy key never waits for AcquireLease.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from veloera.billing.v1 import billing_pb2, billing_pb2_grpc

from services.shared.config import Env
from services.shared.pricing import PriceSnapshot, reserve_amount

logger = logging.getLogger(__name__)

LeaseKey = tuple[int, int, str, str, str]
ACQUIRE_TIMEOUT = 2.0
REFILL_SHARE = 4  # acquire the successor when less than 1/4 of the lease is left
REFILL_SECONDS = 2.0  # ... or when it stops taking requests within this many seconds
LEASE_SECONDS = 2.0  # a successor covers this many seconds of the traffic seen
MAX_REQUESTS = 10_000  # billing's cap on the requests one lease covers
ACQUIRE_ROUNDS = 3  # leases a request waits for (others may use one up) before it gives up


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    requests: int = 64  # holds like the current one a lease should cover
    ttl_seconds: int = 30  # how long a lease takes new requests
    hold_seconds: int = 720  # how long after that billing waits before reaping it


@dataclass(slots=True)
class LocalLease:
    lease_id: str
    key: LeaseKey
    remaining: int
    price: PriceSnapshot
    output_limit: int
    usable_until: float  # monotonic
    granted: int = 0
    started: float = 0.0  # monotonic
    taken: int = 0  # requests held against it
    inflight: int = 0
    retired: bool = False
    returned: bool = False
    refilling: bool = False  # its successor was asked for (once, even if that failed)

    def wants_successor(self, now: float) -> bool:
        return not self.refilling and (
            self.remaining * REFILL_SHARE < self.granted
            or now >= self.usable_until - REFILL_SECONDS
        )

    def successor_requests(self, minimum: int, now: float) -> int:
        """Requests the next lease should cover: LEASE_SECONDS of this one's rate."""
        rate = self.taken / max(now - self.started, 0.05)
        return max(minimum, int(rate * LEASE_SECONDS))


@dataclass(slots=True)
class PerRequest:
    until: float


@dataclass(slots=True)
class LeaseBook:
    stub: billing_pb2_grpc.RelayBillingServiceAsyncStub
    give_back: Callable[[str], None]  # queue a lease return (after its settlements)
    config: LeaseConfig = field(default_factory=LeaseConfig)
    holder: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )
    _leases: dict[LeaseKey, LocalLease | PerRequest] = field(default_factory=dict)
    _held: dict[str, tuple[LocalLease, int]] = field(default_factory=dict)
    _acquiring: dict[LeaseKey, asyncio.Task[None]] = field(default_factory=dict)
    _waiting: dict[LeaseKey, int] = field(default_factory=dict)  # requests waiting per key
    # The unheld part of a retired lease whose requests are still in flight: given back to the
    # wallet with the key's next AcquireLease, so the money is usable before they finish.
    _trims: dict[LeaseKey, billing_pb2.LeaseTrim] = field(default_factory=dict)
    _generation: int = 0  # bumped when prices change: leases acquired before are retired

    async def reserve(
        self,
        *,
        request_id: str,
        user_id: int,
        token_id: int,
        model: str,
        group: str,
        requested_model: str,
        prompt_tokens: int,
        max_tokens: int,
    ) -> int | None:
        """Hold the request locally; returns the output tokens the hold covers, or None:
        leases are off for it (use Reserve). Raises the AcquireLease error (no quota, unpriced
        model) like Reserve would."""
        key = (user_id, token_id, model, group, requested_model)
        for _ in range(ACQUIRE_ROUNDS):
            taken = self._take(key, request_id, prompt_tokens, max_tokens)
            if taken is not None:
                return taken
            entry = self._leases.get(key)
            if isinstance(entry, PerRequest) and time.monotonic() < entry.until:
                return None
            await self._wait_for_lease(key, prompt_tokens, max_tokens)
        return self._take(key, request_id, prompt_tokens, max_tokens)

    async def _wait_for_lease(self, key: LeaseKey, prompt_tokens: int, max_tokens: int) -> None:
        """Wait for the key's next lease (one AcquireLease in flight per key, whoever needs
        it): every waiter wakes at once when it lands, none queues behind another."""
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            acquiring = self._acquiring.get(key) or self._start_acquire(
                key, prompt_tokens, max_tokens, self.config.requests
            )
            await asyncio.shield(acquiring)
        finally:
            left = self._waiting[key] - 1
            if left:
                self._waiting[key] = left
            else:
                del self._waiting[key]

    def _start_acquire(
        self, key: LeaseKey, prompt_tokens: int, max_tokens: int, requests: int
    ) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(
            self._acquire(key, prompt_tokens, max_tokens, requests)
        )
        self._acquiring[key] = task
        task.add_done_callback(lambda done: self._acquired(key, done))
        return task

    def _acquired(self, key: LeaseKey, task: asyncio.Task[None]) -> None:
        if self._acquiring.get(key) is task:
            del self._acquiring[key]
        if not task.cancelled() and task.exception() is not None:
            # Waiters re-raise it themselves; a background refill's failure only leaves the
            # requests on the current lease until it is used up.
            logger.info("AcquireLease failed: %s", type(task.exception()).__name__)

    def _demand(self, key: LeaseKey, requests: int) -> int:
        """`requests`, or more when a burst is waiting for the key's lease: a lease for all of
        them twice over, so a herd of new requests does not take one AcquireLease per 64."""
        return max(requests, 2 * self._waiting.get(key, 0))

    def _take(
        self, key: LeaseKey, request_id: str, prompt_tokens: int, max_tokens: int
    ) -> int | None:
        """The output tokens covered when the request fits the key's current lease."""
        lease = self._leases.get(key)
        if not isinstance(lease, LocalLease):
            return None
        now = time.monotonic()
        if now >= lease.usable_until:
            self._retire(lease)
            return None
        max_output = max_tokens if max_tokens > 0 else lease.output_limit
        amount = reserve_amount(
            lease.price, prompt_tokens=prompt_tokens, max_output_tokens=max_output
        )
        if amount > lease.remaining:
            self._retire(lease)
            return None
        lease.remaining -= amount
        lease.taken += 1
        lease.inflight += 1
        self._held[request_id] = (lease, amount)
        if lease.wants_successor(now):
            lease.refilling = True
            if key not in self._acquiring:
                requests = lease.successor_requests(self.config.requests, now)
                self._start_acquire(key, prompt_tokens, max_tokens, requests)
        return max_output

    async def _acquire(
        self, key: LeaseKey, prompt_tokens: int, max_tokens: int, requests: int
    ) -> None:
        """One AcquireLease; the granted lease becomes the key's current one."""
        await asyncio.sleep(0)  # let the requests arriving with this one count as demand
        generation = self._generation
        user_id, token_id, model, group, requested_model = key
        trim = self._trims.pop(key, None)
        reply: billing_pb2.Lease = await self.stub.AcquireLease(
            billing_pb2.AcquireLeaseRequest(
                holder=self.holder,
                user_id=user_id,
                token_id=token_id,
                model=model,
                group=group,
                requested_model=requested_model,
                upstream_model=model,
                prompt_tokens=prompt_tokens,
                max_tokens=max_tokens,
                requests=min(self._demand(key, requests), MAX_REQUESTS),
                ttl_ms=self.config.ttl_seconds * 1000,
                hold_ms=self.config.hold_seconds * 1000,
                trim=trim,
            ),
            timeout=ACQUIRE_TIMEOUT,
        )
        self._install(key, reply)
        if generation != self._generation:  # priced before a price change landed
            current = self._leases.get(key)
            if isinstance(current, LocalLease):
                self._retire(current)

    def _install(self, key: LeaseKey, reply: billing_pb2.Lease) -> None:
        """Make the granted lease the key's current one, retiring its predecessor."""
        now = time.monotonic()
        previous = self._leases.get(key)
        if isinstance(previous, LocalLease):
            self._retire(previous)
        if reply.per_request:
            self._leases[key] = PerRequest(until=now + self.config.ttl_seconds)
            return
        # Stop taking requests a little before billing's expiry (clock skew, the RPC itself).
        lease = LocalLease(
            lease_id=reply.lease_id,
            key=key,
            remaining=reply.granted,
            price=price_of(reply.price),
            output_limit=reply.output_limit,
            usable_until=now + max(self.config.ttl_seconds - 1, 0.5),
            granted=reply.granted,
            started=now,
        )
        self._leases[key] = lease
        asyncio.get_running_loop().call_later(
            self.config.ttl_seconds, self._retire_if_current, lease
        )

    def _retire_if_current(self, lease: LocalLease) -> None:
        self._retire(lease)

    def _retire(self, lease: LocalLease) -> None:
        if self._leases.get(lease.key) is lease:
            del self._leases[lease.key]
        lease.retired = True
        if lease.inflight and lease.remaining > 0 and not lease.returned:
            self._trims[lease.key] = billing_pb2.LeaseTrim(
                lease_id=lease.lease_id, amount=lease.remaining
            )
            lease.remaining = 0
        self._maybe_return(lease)

    def prices_changed(self) -> None:
        """A price changed: retire every lease, so the next request is held at the new price
        (billing charges the live price whatever the hold was)."""
        self._generation += 1
        for lease in [v for v in self._leases.values() if isinstance(v, LocalLease)]:
            self._retire(lease)

    def _maybe_return(self, lease: LocalLease) -> None:
        if lease.retired and lease.inflight == 0 and not lease.returned:
            lease.returned = True
            self.give_back(lease.lease_id)

    def settled(self, request: billing_pb2.SettleRequest) -> bool:
        """Mark a leased request's settlement (fills the lease fields); False if not leased."""
        held = self._held.pop(request.request_id, None)
        if held is None:
            return False
        lease, amount = held
        request.lease_id = lease.lease_id
        request.lease_reserved = amount
        lease.inflight -= 1
        self._maybe_return(lease)
        return True

    def released(self, request_id: str) -> bool:
        """Nothing was served: the local hold goes back to the lease; False if not leased."""
        held = self._held.pop(request_id, None)
        if held is None:
            return False
        lease, amount = held
        lease.remaining += amount
        lease.inflight -= 1
        self._maybe_return(lease)
        return True

    def retire_all(self) -> None:
        """On shutdown: every lease goes back once its in-flight requests are done."""
        for task in self._acquiring.values():
            task.cancel()
        for lease in [v for v in self._leases.values() if isinstance(v, LocalLease)]:
            self._retire(lease)


def price_of(price: billing_pb2.Price) -> PriceSnapshot:
    return PriceSnapshot(
        per_call=price.per_call,
        model_price=price.model_price,
        model_ratio=price.model_ratio,
        completion_ratio=price.completion_ratio,
        cache_ratio=price.cache_ratio,
        cache_creation_ratio=price.cache_creation_ratio,
        group_ratio=price.group_ratio,
        quota_per_unit=price.quota_per_unit,
        fallback=price.fallback,
        priced_model=price.priced_model,
        audio_ratio=price.audio_ratio,
        audio_completion_ratio=price.audio_completion_ratio,
    )


def lease_config(env: Env) -> LeaseConfig | None:
    """BILLING_LEASES (default true) turns leases on (false: one Reserve per request);
    BILLING_LEASE_REQUESTS, BILLING_LEASE_TTL and BILLING_LEASE_HOLD tune them. Read by the
    relay's settings with the rest of its environment."""
    enabled = env.bool("BILLING_LEASES", True)
    config = LeaseConfig(
        requests=env.int("BILLING_LEASE_REQUESTS", 64),
        ttl_seconds=env.int("BILLING_LEASE_TTL", 30),
        hold_seconds=env.int("BILLING_LEASE_HOLD", 720),
    )
    return config if enabled else None
