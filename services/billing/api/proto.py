"""Conversions between protobuf messages and the billing domain types: the money RPCs (holds,
settlements, leases, wallets, budgets, adjustments, the ledger check)."""

from __future__ import annotations

from typing import Any

import orjson
from veloera.billing.v1 import billing_pb2

from services.billing.metering.accounting import ReleaseResult
from services.billing.metering.adjust import Adjustment
from services.billing.metering.leasing import Granted, LeaseCall
from services.billing.metering.reserve import Placed, ReserveCall
from services.billing.metering.settlement import SettleInput, SettleResult
from services.billing.store.ledger import Mismatch
from services.billing.store.wallets import BudgetRow, WalletRow
from services.shared.errors import InvalidArgument
from services.shared.pricing import KINDS, PriceSnapshot, TokenUsage


def price_pb(price: PriceSnapshot) -> billing_pb2.Price:
    return billing_pb2.Price(
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
        audio_completion_ratio=(
            price.completion_ratio
            if price.audio_completion_ratio is None
            else price.audio_completion_ratio
        ),
    )


def usage_of(usage: billing_pb2.Usage) -> TokenUsage:
    return TokenUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        cache_creation_tokens=usage.cache_creation_tokens,
        image_count=usage.image_count,
        characters=usage.characters,
        audio_seconds=usage.audio_seconds,
        audio_input_tokens=usage.audio_input_tokens,
        audio_output_tokens=usage.audio_output_tokens,
        image_size=usage.image_size,
        image_quality=usage.image_quality,
        kind=_kind(usage.kind),
    )


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidArgument(f"usage kind must be one of {', '.join(sorted(KINDS - {''}))}")
    return kind


def other_json(raw: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"other_json is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidArgument("other_json must be a JSON object")
    return value


def settle_input(request: billing_pb2.SettleRequest) -> SettleInput:
    if not request.request_id:
        raise InvalidArgument("request_id is required")
    return SettleInput(
        request_id=request.request_id,
        usage=usage_of(request.usage),
        username=request.username,
        token_name=request.token_name,
        model_name=request.model_name,
        upstream_model=request.upstream_model,
        channel_id=request.channel_id,
        channel_name=request.channel_name,
        is_stream=request.is_stream,
        elapsed_ms=request.elapsed_ms,
        first_response_ms=request.first_response_ms,
        channels_tried=list(request.channels_tried),
        client_ip=request.client_ip,
        other=other_json(request.other_json),
        interrupted=request.interrupted,
        estimated=request.usage.estimated,
        quota_warning_threshold=max(request.quota_warning_threshold, 0),
        lease_id=request.lease_id,
        lease_reserved=max(request.lease_reserved, 0),
    )


def wallet_pb(row: WalletRow) -> billing_pb2.Wallet:
    return billing_pb2.Wallet(
        user_id=row.user_id,
        quota=row.quota,
        subscription_quota=row.subscription_quota,
        used_quota=row.used_quota,
        request_count=row.request_count,
        held=row.held,
        aff_quota=row.aff_quota,
        aff_history=row.aff_history,
    )


def budget_pb(row: BudgetRow) -> billing_pb2.TokenBudget:
    return billing_pb2.TokenBudget(
        token_id=row.token_id,
        user_id=row.user_id,
        remain_quota=row.remain_quota,
        used_quota=row.used_quota,
        unlimited=row.unlimited,
    )


def reserve_call(request: billing_pb2.ReserveRequest) -> ReserveCall:
    if not request.request_id:
        raise InvalidArgument("request_id is required")
    if request.user_id <= 0:
        raise InvalidArgument("user_id must be positive")
    return ReserveCall(
        request_id=request.request_id,
        user_id=request.user_id,
        token_id=request.token_id,
        model=request.model,
        group=request.group,
        prompt_tokens=request.prompt_tokens,
        max_tokens=request.max_tokens,
        ttl_seconds=request.ttl_ms // 1000,
        requested_model=request.requested_model,
        upstream_model=request.upstream_model,
        accept_unpriced=request.accept_unpriced,
        estimate=usage_of(request.estimate) if request.HasField("estimate") else None,
        token_rate_limit_period=request.token_rate_limit.period_ms // 1000,
        token_rate_limit_count=request.token_rate_limit.count,
        token_rate_limit_success=request.token_rate_limit.success,
    )


def reserve_pb(placed: Placed) -> billing_pb2.ReserveResponse:
    hold = placed.hold
    return billing_pb2.ReserveResponse(
        request_id=hold.request_id,
        reserved=hold.reserved,
        price=price_pb(hold.price),
        user_balance_after=placed.balance,
        expire_time=int(hold.expires_at.timestamp()),
        max_output_tokens=placed.max_output_tokens,
    )


def settle_pb(request_id: str, result: SettleResult) -> billing_pb2.SettleResponse:
    return billing_pb2.SettleResponse(
        request_id=request_id,
        charged=result.charged,
        refunded=result.refunded,
        already_settled=result.already_settled,
        log_id=result.log_id,
    )


def release_pb(request_id: str, result: ReleaseResult) -> billing_pb2.ReleaseResponse:
    return billing_pb2.ReleaseResponse(
        request_id=request_id,
        released=result.released,
        already_released=result.already_released,
    )


def lease_call(request: billing_pb2.AcquireLeaseRequest) -> LeaseCall:
    if request.user_id <= 0 or not request.holder:
        raise InvalidArgument("user_id and holder are required")
    return LeaseCall(
        holder=request.holder,
        user_id=request.user_id,
        token_id=request.token_id,
        model=request.model,
        group=request.group,
        requested_model=request.requested_model,
        upstream_model=request.upstream_model,
        prompt_tokens=request.prompt_tokens,
        max_tokens=request.max_tokens,
        requests=request.requests,
        ttl_seconds=request.ttl_ms // 1000,
        hold_seconds=request.hold_ms // 1000,
        trim_lease_id=request.trim.lease_id,
        trim_amount=request.trim.amount,
    )


def lease_pb(granted: Granted) -> billing_pb2.Lease:
    if granted.per_request or granted.price is None or granted.expires_at is None:
        return billing_pb2.Lease(per_request=True)
    return billing_pb2.Lease(
        lease_id=granted.lease_id,
        granted=granted.granted,
        expire_time=int(granted.expires_at.timestamp()),
        price=price_pb(granted.price),
        output_limit=granted.output_limit,
        first_hold=granted.first_hold,
    )


def return_lease_pb(returned: tuple[int, bool]) -> billing_pb2.ReturnLeaseResponse:
    return billing_pb2.ReturnLeaseResponse(returned=returned[0], already_returned=returned[1])


def wallets_pb(rows: list[WalletRow]) -> billing_pb2.GetWalletsResponse:
    return billing_pb2.GetWalletsResponse(wallets=[wallet_pb(row) for row in rows])


def budgets_pb(rows: list[BudgetRow]) -> billing_pb2.GetTokenBudgetsResponse:
    return billing_pb2.GetTokenBudgetsResponse(budgets=[budget_pb(row) for row in rows])


def adjustment(request: billing_pb2.AdjustQuotaRequest) -> Adjustment:
    which = request.WhichOneof("change")
    return Adjustment(
        idempotency_key=request.idempotency_key,
        user_id=request.user_id,
        delta=request.delta if which == "delta" else None,
        set_to=request.set_to if which == "set_to" else None,
        reason=request.reason,
        actor_id=request.actor_id,
        kind=request.kind or "admin",
        subscription=request.subscription,
        expected=request.expected if request.HasField("expected") else None,
    )


def ledger_pb(checked: tuple[int, list[Mismatch]]) -> billing_pb2.CheckLedgerResponse:
    count, mismatches = checked
    return billing_pb2.CheckLedgerResponse(
        consistent=not mismatches,
        wallets_checked=count,
        mismatches=[
            billing_pb2.LedgerMismatch(
                user_id=m.user_id, wallet_quota=m.wallet_value, ledger_sum=m.ledger_sum
            )
            for m in mismatches
        ],
    )
