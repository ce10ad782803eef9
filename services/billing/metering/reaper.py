"""The reaper: settles holds whose request never reported (at their reserved amount), returns
leases past their time, and prunes old rate-limit events; one transaction per item."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from services.billing.context import Billing
from services.billing.metering import leasing, settlement
from services.billing.metrics import HOLDS_REAPED
from services.billing.store import rate_limits

logger = logging.getLogger(__name__)

_REAP_BATCH = 200


async def reap_expired(billing: Billing) -> int:
    """Settle expired open holds and return leases past their time, one transaction each;
    returns how many holds."""
    await leasing.reap(billing)
    reaped = 0
    while reaped < _REAP_BATCH:
        async with billing.pool.acquire() as conn, conn.transaction():
            hold = await settlement.reap_one(conn)
        if hold is None:
            break
        reaped += 1
        HOLDS_REAPED.inc()
        logger.info("hold %s expired; settled at its reserved amount", hold.request_id)
    return reaped


async def run(
    billing: Billing, interval: float, *, may_reap: Callable[[], Awaitable[bool]] | None = None
) -> None:
    """Sweep every `interval` seconds; a sweep is skipped while `may_reap` says no."""
    while True:
        try:
            if may_reap is None or await may_reap():
                await reap_expired(billing)
            async with billing.pool.acquire() as conn:
                await rate_limits.prune(conn)
        except Exception:  # the loop must survive anything; the next sweep retries
            logger.warning("hold reaper sweep failed", exc_info=True)
        await asyncio.sleep(interval)
