"""The lease use cases (on unless the relay sets BILLING_LEASES=false): acquire, return, reap;
one transaction each (the money moves are in leases.py)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from services.billing.context import Billing
from services.billing.metering import leases
from services.billing.metering.accounting import worst_case_refusal
from services.billing.metrics import LEASES
from services.shared.errors import QuotaExhausted
from services.shared.pricing import PriceSnapshot, reserve_amount

logger = logging.getLogger(__name__)

MAX_TTL_SECONDS = 600
_REAP_BATCH = 200


@dataclass(frozen=True, slots=True)
class LeaseCall:
    holder: str
    user_id: int
    token_id: int
    model: str
    group: str
    requested_model: str
    upstream_model: str
    prompt_tokens: int
    max_tokens: int
    requests: int
    ttl_seconds: int
    hold_seconds: int
    trim_lease_id: str = ""  # the predecessor's part its holder no longer holds
    trim_amount: int = 0


@dataclass(frozen=True, slots=True)
class Granted:
    lease_id: str
    granted: int
    expires_at: datetime | None
    price: PriceSnapshot | None
    output_limit: int
    first_hold: int
    per_request: bool = False


async def acquire(billing: Billing, call: LeaseCall) -> Granted:
    """A lease covering `requests` holds like the one at hand (at least that one)."""
    table = billing.prices.table
    if table.flag("ModelRequestRateLimitEnabled"):
        # Per-user request limits are counted per Reserve: no leases while they are on.
        return Granted("", 0, None, None, 0, 0, per_request=True)
    group = call.group or "default"
    name = table.priced_name(
        model=call.model, requested=call.requested_model, upstream=call.upstream_model
    )
    price = table.resolve(name, group)
    output_limit = table.output_limit(name)
    max_output = call.max_tokens if call.max_tokens > 0 else output_limit
    first = reserve_amount(price, prompt_tokens=call.prompt_tokens, max_output_tokens=max_output)
    spec = leases.LeaseSpec(
        lease_id=f"lease-{uuid.uuid4().hex}",
        holder=call.holder,
        user_id=call.user_id,
        token_id=call.token_id,
        model=name,
        group=group,
        price_json=leases.price_json(price.to_json()),
        first_hold=first,
        desired=first * min(max(call.requests, 1), 10_000),
        ttl_seconds=min(max(call.ttl_seconds, 1), MAX_TTL_SECONDS),
        hold_seconds=max(call.hold_seconds, 0),
    )
    if call.trim_lease_id and call.trim_amount > 0:
        # Its own transaction: what the holder gave up goes back even if the grant is refused.
        async with billing.pool.acquire() as conn, conn.transaction():
            if await leases.trim(conn, lease_id=call.trim_lease_id, amount=call.trim_amount):
                LEASES.labels("trimmed").inc()
    try:
        async with billing.pool.acquire() as conn, conn.transaction():
            granted, expires_at = await leases.grant(conn, spec=spec)
    except leases.TooSmall:
        LEASES.labels("per_request").inc()
        return Granted("", 0, None, None, 0, 0, per_request=True)
    except QuotaExhausted as exc:
        LEASES.labels(exc.code).inc()
        raise worst_case_refusal(exc, first, max_output, True) from None
    LEASES.labels("granted").inc()
    return Granted(spec.lease_id, granted, expires_at, price, output_limit, first)


async def give_back(billing: Billing, lease_id: str) -> tuple[int, bool]:
    async with billing.pool.acquire() as conn, conn.transaction():
        returned, already = await leases.give_back(conn, lease_id=lease_id)
    if not already:
        LEASES.labels("returned").inc()
    return returned, already


async def reap(billing: Billing) -> int:
    """Return every lease past its reap time (expiry + the holder's hold time)."""
    reaped = 0
    while reaped < _REAP_BATCH:
        async with billing.pool.acquire() as conn, conn.transaction():
            lease_id = await leases.reap_one(conn)
        if lease_id is None:
            break
        reaped += 1
        LEASES.labels("reaped").inc()
        logger.info("lease %s expired; unspent part returned", lease_id)
    return reaped
