"""Conversions between protobuf messages and the billing domain types."""

from __future__ import annotations

from typing import Any

import orjson
from veloera.billing.v1 import billing_pb2

from services.billing.logs import LogRow
from services.billing.pricing import PriceSnapshot, TokenUsage
from services.billing.settlement import SettleInput
from services.billing.wallets import BudgetRow, WalletRow
from services.shared.errors import InvalidArgument


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
    )


def _other_json(raw: str) -> dict[str, Any]:
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
        other=_other_json(request.other_json),
        interrupted=request.interrupted,
        estimated=request.usage.estimated,
    )


def wallet_pb(row: WalletRow) -> billing_pb2.Wallet:
    return billing_pb2.Wallet(
        user_id=row.user_id,
        quota=row.quota,
        subscription_quota=row.subscription_quota,
        used_quota=row.used_quota,
        request_count=row.request_count,
        held=row.held,
    )


def budget_pb(row: BudgetRow) -> billing_pb2.TokenBudget:
    return billing_pb2.TokenBudget(
        token_id=row.token_id,
        user_id=row.user_id,
        remain_quota=row.remain_quota,
        used_quota=row.used_quota,
        unlimited=row.unlimited,
    )


def log_pb(row: LogRow, *, admin_view: bool) -> billing_pb2.LogEntry:
    other = dict(row.other)
    if not admin_view:
        other.pop("admin_info", None)
    return billing_pb2.LogEntry(
        id=row.id,
        user_id=row.user_id,
        created_at=int(row.created_at.timestamp()) if row.created_at else 0,
        type=row.type,  # type: ignore[arg-type]
        content=row.content,
        username=row.username,
        token_name=row.token_name,
        model_name=row.model_name,
        quota=row.quota,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        use_time=row.use_time,
        is_stream=row.is_stream,
        channel_id=row.channel_id,
        channel_name=row.channel_name,
        token_id=row.token_id,
        group=row.group,
        other=orjson.dumps(other).decode(),
        client_ip=row.client_ip,
        request_id=row.request_id or "",
        elapsed_ms=row.elapsed_ms,
    )
