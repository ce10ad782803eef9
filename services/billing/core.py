"""The billing use cases: each opens one transaction, then publishes events after the commit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from nats.js import JetStreamContext
from veloera.billing.v1 import events_pb2

from services.billing import accounting, adjust, batch_core, lease_core, settlement
from services.billing.accounting import ReleaseResult, worst_case_refusal
from services.billing.metrics import (
    HOLDS_REAPED,
    QUOTA_CHARGED,
    QUOTA_UNCOLLECTED,
    RELEASES,
    RESERVES,
    SETTLEMENTS,
)
from services.billing.pricing.live import LivePrices
from services.billing.settlement import SettleInput, SettleResult
from services.billing.store import holds, ledger, wallets
from services.billing.store import rate_limits as ratelimit
from services.billing.store import reserve as reserve_sql
from services.billing.store.holds import Hold
from services.billing.store.reserve import ReserveInput
from services.shared import subjects
from services.shared.errors import QuotaExhausted
from services.shared.pricing import PriceSnapshot, TokenUsage, reserve_amount, settle_amount

logger = logging.getLogger(__name__)

_PUBLISH_TIMEOUT = 2.0
_REAP_BATCH = 200


@dataclass(frozen=True, slots=True)
class ReserveCall:
    """One Reserve request, as the relay sent it."""

    request_id: str
    user_id: int
    token_id: int
    model: str
    group: str
    prompt_tokens: int
    max_tokens: int
    ttl_seconds: int = 0
    requested_model: str = ""
    upstream_model: str = ""
    accept_unpriced: bool = False
    estimate: TokenUsage | None = None
    token_rate_limit_period: int = 0
    token_rate_limit_count: int = 0
    token_rate_limit_success: int = 0


class BillingCore:
    """Reserve / settle / release and the wallet operations, over one pool."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        prices: LivePrices,
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

    async def reserve(self, call: ReserveCall) -> tuple[Hold, int, int]:
        """(hold, user balance after, output tokens the hold covers). Always places a hold:
        there is no trust shortcut."""
        table = self.prices.table
        group = call.group or "default"
        name = table.priced_name(
            model=call.model, requested=call.requested_model, upstream=call.upstream_model
        )
        price = table.resolve(name, group, accept_unpriced=call.accept_unpriced)
        max_output = call.max_tokens if call.max_tokens > 0 else table.output_limit(name)
        amount = reserve_amount(
            price,
            prompt_tokens=call.prompt_tokens,
            max_output_tokens=max_output,
            estimate=call.estimate,
        )
        spec = ReserveInput(
            request_id=call.request_id,
            user_id=call.user_id,
            token_id=call.token_id,
            model=name,
            group=group,
            price=price,
            amount=amount,
            ttl_seconds=call.ttl_seconds if call.ttl_seconds > 0 else self._default_ttl,
        )
        try:
            hold, created, balance = await reserve_sql.reserve(
                self.pool, spec=spec, limits=self._limits(call)
            )
        except ratelimit.RateLimited as exc:
            RESERVES.labels(exc.code).inc()
            raise
        except QuotaExhausted as exc:
            RESERVES.labels(exc.code).inc()
            raise worst_case_refusal(exc, amount, max_output, call.estimate is None) from None
        RESERVES.labels("placed" if created else "repeated").inc()
        return hold, balance, 0 if call.estimate is not None else max_output

    def _limits(self, call: ReserveCall) -> list[ratelimit.Limit]:
        table = self.prices.table
        limits: list[ratelimit.Limit] = []
        if table.flag("ModelRequestRateLimitEnabled"):
            limits.append(
                ratelimit.Limit(
                    scope="user",
                    subject=call.user_id,
                    period_seconds=table.number("ModelRequestRateLimitDurationMinutes") * 60,
                    max_requests=table.number("ModelRequestRateLimitCount"),
                    max_success=table.number("ModelRequestRateLimitSuccessCount"),
                )
            )
        if call.token_id > 0 and call.token_rate_limit_period > 0:
            limits.append(
                ratelimit.Limit(
                    scope="token",
                    subject=call.token_id,
                    period_seconds=call.token_rate_limit_period,
                    max_requests=call.token_rate_limit_count,
                    max_success=call.token_rate_limit_success,
                )
            )
        return limits

    async def settle(self, spec: SettleInput) -> SettleResult:
        """One settlement: a batch of one (the same money path as SettleBatch)."""
        [outcome], _ = await batch_core.settle_batch(self, [spec], [])
        if outcome.error is not None:
            raise outcome.error
        assert outcome.result is not None
        return outcome.result

    async def after_settle(
        self, spec: SettleInput, result: SettleResult, balance: int | None
    ) -> None:
        """Metrics and events of one committed settlement."""
        if result.already_settled:
            SETTLEMENTS.labels("repeated").inc()
            return
        SETTLEMENTS.labels("empty" if spec.usage.is_empty else "settled").inc()
        QUOTA_CHARGED.inc(result.charged)
        uncollected = settle_amount(result.hold.price, spec.usage) - result.charged
        if uncollected > 0:
            QUOTA_UNCOLLECTED.inc(uncollected)
        await self._publish_usage(spec, result)
        if balance is not None:
            await self._warn_if_crossed(result, balance, spec.quota_warning_threshold)

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
        """Settle expired open holds and return leases past their time, one transaction
        each; returns how many holds."""
        await lease_core.reap(self)
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

    async def run_reaper(
        self, interval: float, *, may_reap: Callable[[], Awaitable[bool]] | None = None
    ) -> None:
        """Sweep every `interval` seconds; a sweep is skipped while `may_reap` says no."""
        while True:
            try:
                if may_reap is None or await may_reap():
                    await self.reap_expired()
                async with self.pool.acquire() as conn:
                    await ratelimit.prune(conn)
            except Exception:  # the loop must survive anything; the next sweep retries
                logger.warning("hold reaper sweep failed", exc_info=True)
            await asyncio.sleep(interval)

    async def _warn_if_crossed(self, result: SettleResult, balance: int, own: int) -> None:
        """A QuotaWarningEvent when this request took the balance below the threshold (the
        user's own, else the QuotaRemindThreshold option)."""
        threshold = own or self.prices.table.number("QuotaRemindThreshold")
        if self._js is None or threshold <= 0:
            return
        if not balance < threshold <= balance + result.charged:
            return
        event = events_pb2.QuotaWarningEvent(
            user_id=result.hold.user_id,
            balance=balance,
            threshold=threshold,
            occurred_at_ms=int(time.time() * 1000),
        )
        try:
            await self._js.publish(
                subjects.QUOTA_WARNING_SUBJECT, event.SerializeToString(), timeout=_PUBLISH_TIMEOUT
            )
        except Exception:  # best effort, like the usage event
            logger.warning("quota warning for user %d not published", result.hold.user_id)

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
