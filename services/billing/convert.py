"""Conversions between protobuf messages and the billing domain types."""

from __future__ import annotations

from typing import Any

import orjson
from veloera.billing.v1 import billing_pb2

from services.billing.settlement import SettleInput
from services.billing.store.logs import LogFilter, LogRow
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


def log_filter(request: billing_pb2.ListLogsRequest) -> LogFilter:
    if request.start_timestamp < 0 or request.end_timestamp < 0:
        raise InvalidArgument("timestamps must not be negative")
    return LogFilter(
        user_id=request.user_id,
        type=int(request.type),
        start_timestamp=request.start_timestamp,
        end_timestamp=request.end_timestamp,
        username=request.username,
        token_name=request.token_name,
        model_name=request.model_name,
        channel_id=request.channel_id,
        group=request.group,
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


_FREE_LOG_TYPES = {billing_pb2.LOG_TYPE_ERROR, billing_pb2.LOG_TYPE_SYSTEM}


def free_log_row(entry: billing_pb2.LogEntry) -> LogRow:
    """A WriteLog entry as a row; only types that never go with a balance change."""
    if entry.type not in _FREE_LOG_TYPES:
        raise InvalidArgument("WriteLog accepts only error (6) and system (4) rows")
    if entry.user_id <= 0:
        raise InvalidArgument("user_id must be positive")
    return LogRow(
        user_id=entry.user_id,
        type=int(entry.type),
        content=entry.content,
        username=entry.username,
        token_name=entry.token_name,
        model_name=entry.model_name,
        quota=0,
        prompt_tokens=max(entry.prompt_tokens, 0),
        completion_tokens=max(entry.completion_tokens, 0),
        use_time=max(entry.use_time, 0),
        is_stream=entry.is_stream,
        channel_id=entry.channel_id,
        channel_name=entry.channel_name,
        token_id=entry.token_id,
        group=entry.group,
        other=_other_json(entry.other),
        client_ip=entry.client_ip,
        request_id=entry.request_id or None,
        elapsed_ms=max(entry.elapsed_ms, 0),
    )
