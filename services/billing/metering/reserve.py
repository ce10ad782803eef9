"""The Reserve use case: price the request's worst case and place the hold (one statement,
`reserve_hold`). Always places a hold: there is no trust shortcut."""

from __future__ import annotations

from dataclasses import dataclass

from services.billing.context import Billing
from services.billing.metering.accounting import worst_case_refusal
from services.billing.metrics import RESERVES
from services.billing.pricing.table import PricingTable
from services.billing.store import rate_limits
from services.billing.store import reserve as reserve_sql
from services.billing.store.holds import Hold
from services.billing.store.reserve import ReserveInput
from services.shared.errors import QuotaExhausted
from services.shared.pricing import TokenUsage, reserve_amount


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


@dataclass(frozen=True, slots=True)
class Placed:
    hold: Hold
    balance: int  # the user's balance right after
    max_output_tokens: int  # output tokens the hold covers (0 for a non-text estimate)


async def reserve(billing: Billing, call: ReserveCall) -> Placed:
    table = billing.prices.table
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
        ttl_seconds=call.ttl_seconds if call.ttl_seconds > 0 else billing.hold_ttl,
    )
    try:
        hold, created, balance = await reserve_sql.reserve(
            billing.pool, spec=spec, limits=_limits(table, call)
        )
    except rate_limits.RateLimited as exc:
        RESERVES.labels(exc.code).inc()
        raise
    except QuotaExhausted as exc:
        RESERVES.labels(exc.code).inc()
        raise worst_case_refusal(exc, amount, max_output, call.estimate is None) from None
    RESERVES.labels("placed" if created else "repeated").inc()
    return Placed(hold, balance, 0 if call.estimate is not None else max_output)


def _limits(table: PricingTable, call: ReserveCall) -> list[rate_limits.Limit]:
    limits: list[rate_limits.Limit] = []
    if table.flag("ModelRequestRateLimitEnabled"):
        limits.append(
            rate_limits.Limit(
                scope="user",
                subject=call.user_id,
                period_seconds=table.number("ModelRequestRateLimitDurationMinutes") * 60,
                max_requests=table.number("ModelRequestRateLimitCount"),
                max_success=table.number("ModelRequestRateLimitSuccessCount"),
            )
        )
    if call.token_id > 0 and call.token_rate_limit_period > 0:
        limits.append(
            rate_limits.Limit(
                scope="token",
                subject=call.token_id,
                period_seconds=call.token_rate_limit_period,
                max_requests=call.token_rate_limit_count,
                max_success=call.token_rate_limit_success,
            )
        )
    return limits
