"""The billing use cases: each opens one transaction, then publishes events after the commit."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
from nats.js import JetStreamContext
from veloera.billing.v1 import events_pb2

from services.billing import accounting, adjust, holds, ledger, settlement, wallets
from services.billing.accounting import ReleaseResult, ReserveInput
from services.billing.holds import Hold
from services.billing.metrics import (
    HOLDS_REAPED,
    QUOTA_CHARGED,
    QUOTA_UNCOLLECTED,
    RELEASES,
    RESERVES,
    SETTLEMENTS,
)
from services.billing.prices import PricingStore
from services.billing.pricing import PriceSnapshot, reserve_amount, settle_amount
from services.billing.settlement import SettleInput, SettleResult
from services.shared import subjects
from services.shared.errors import QuotaExhausted

logger = logging.getLogger(__name__)

_PUBLISH_TIMEOUT = 2.0
_REAP_BATCH = 200


class BillingCore:
    """Reserve / settle / release and the wallet operations, over one pool."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        prices: PricingStore,
        *,
        js: JetStreamContext | None,
        default_ttl: int,
    ) -> None:
        self.pool = pool
        self.prices = prices
        self._js = js
        self._default_ttl = default_ttl

    def quote(self, *, model: str, group: str) -> PriceSnapshot:
        return self.prices.table.resolve(model, group or "default")

    async def reserve(
        self,
        *,
        request_id: str,
        user_id: int,
        token_id: int,
        model: str,
        group: str,
        prompt_tokens: int,
        max_tokens: int,
        ttl_seconds: int,
    ) -> tuple[Hold, int]:
        """(hold, user balance after). Always places a hold: there is no trust shortcut."""
        table = self.prices.table
        group = group or "default"
        price = table.resolve(model, group)
        amount = reserve_amount(
            price,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            pre_consumed_quota=table.pre_consumed_quota,
        )
        spec = ReserveInput(
            request_id=request_id,
            user_id=user_id,
            token_id=token_id,
            model=model,
            group=group,
            price=price,
            amount=amount,
            ttl_seconds=ttl_seconds if ttl_seconds > 0 else self._default_ttl,
        )
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                hold, created = await accounting.reserve(conn, spec=spec)
                balance = await wallets.lock_wallet(conn, user_id=user_id)
        except QuotaExhausted as exc:
            RESERVES.labels(exc.code).inc()
            raise
        RESERVES.labels("placed" if created else "repeated").inc()
        return hold, 0 if balance is None else balance.total

    async def settle(self, spec: SettleInput) -> SettleResult:
        async with self.pool.acquire() as conn, conn.transaction():
            result = await settlement.settle(conn, spec=spec)
        if result.already_settled:
            SETTLEMENTS.labels("repeated").inc()
            return result
        SETTLEMENTS.labels("empty" if spec.usage.is_empty else "settled").inc()
        QUOTA_CHARGED.inc(result.charged)
        uncollected = settle_amount(result.hold.price, spec.usage) - result.charged
        if uncollected > 0:
            QUOTA_UNCOLLECTED.inc(uncollected)
        await self._publish_usage(spec, result)
        return result

    async def release(self, *, request_id: str, reason: str) -> ReleaseResult:
        async with self.pool.acquire() as conn, conn.transaction():
            result = await accounting.release(conn, request_id=request_id, reason=reason)
        RELEASES.labels("repeated" if result.already_released else "released").inc()
        return result

    async def adjust(self, change: adjust.Adjustment) -> wallets.WalletRow:
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                await adjust.adjust(conn, change=change)
            return (await self.wallets([change.user_id]))[0]

    async def wallets(self, user_ids: list[int]) -> list[wallets.WalletRow]:
        """Wallets in the order asked; a missing wallet is all zeros."""
        async with self.pool.acquire() as conn:
            found = await wallets.get_wallets(conn, user_ids=user_ids)
        return [found.get(uid) or wallets.WalletRow(uid, 0, 0, 0, 0, 0) for uid in user_ids]

    async def get_hold(self, request_id: str) -> Hold | None:
        async with self.pool.acquire() as conn:
            return await holds.get(conn, request_id=request_id)

    async def check_ledger(self, user_ids: list[int]) -> tuple[int, list[ledger.Mismatch]]:
        async with self.pool.acquire() as conn:
            return await ledger.check(conn, user_ids=user_ids)

    async def reap_expired(self) -> int:
        """Settle expired open holds, one transaction each; returns how many."""
        reaped = 0
        while reaped < _REAP_BATCH:
            async with self.pool.acquire() as conn, conn.transaction():
                hold = await settlement.reap_one(conn)
            if hold is None:
                break
            reaped += 1
            HOLDS_REAPED.inc()
            logger.info("hold %s expired; settled at its reserved amount", hold.request_id)
        return reaped

    async def run_reaper(self, interval: float) -> None:
        while True:
            try:
                await self.reap_expired()
            except Exception:  # the loop must survive anything; the next sweep retries
                logger.warning("hold reaper sweep failed", exc_info=True)
            await asyncio.sleep(interval)

    async def _publish_usage(self, spec: SettleInput, result: SettleResult) -> None:
        """Best effort, after the commit: a lost event only delays a dashboard."""
        if self._js is None:
            return
        event = events_pb2.UsageEvent(
            request_id=spec.request_id,
            user_id=result.hold.user_id,
            model_name=spec.model_name or result.hold.model,
            channel_id=spec.channel_id,
            quota=result.charged,
            prompt_tokens=spec.usage.prompt_tokens,
            completion_tokens=spec.usage.completion_tokens,
            occurred_at_ms=int(time.time() * 1000),
        )
        try:
            await self._js.publish(
                subjects.USAGE_SUBJECT, event.SerializeToString(), timeout=_PUBLISH_TIMEOUT
            )
        except Exception:  # any publish failure is tolerated
            logger.warning("usage event for %s not published", spec.request_id, exc_info=True)
