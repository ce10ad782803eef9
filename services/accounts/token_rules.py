"""Validation of API key fields (upstream `router/api-router.go` tokens, `model/token.go`)."""

from __future__ import annotations

from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts.ipnets import normalize_allow_list
from services.accounts.tokens_repo import TokenFields
from services.shared.errors import FailedPrecondition, InvalidArgument
from services.shared.statuses import TokenStatus

MAX_NAME = 30
NEVER = -1
ENABLED = TokenStatus.ENABLED
EXPIRED = TokenStatus.EXPIRED
VALID_STATUSES = frozenset(TokenStatus)
DEFAULT_RATE_PERIOD = 60
DEFAULT_RATE_COUNT = 1000
DEFAULT_RATE_SUCCESS = 10
MAX_MODEL_LIMITS = 1024


def check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidArgument("token name is required")
    if len(name) > MAX_NAME:
        raise InvalidArgument(f"token name must be at most {MAX_NAME} characters")
    return name


def check_expiry(expired_time: int, *, now: int, creating: bool) -> int:
    if expired_time in (0, NEVER):
        return NEVER
    if expired_time < 0 or (creating and expired_time <= now):
        raise InvalidArgument("expired_time must be -1 (never) or a future unix time")
    return expired_time


def check_status(status: int) -> int:
    if status not in VALID_STATUSES:
        raise InvalidArgument(f"unknown token status {status}")
    return status


def check_enable(status: int, expired_time: int, *, now: int) -> None:
    """An enabled token must not be past its expiry (exhaustion is billing's to judge)."""
    if status == ENABLED and expired_time != NEVER and expired_time <= now:
        raise FailedPrecondition("token has expired, change its expiry first", code="token_expired")


def _model_limits(models: list[str]) -> list[str]:
    result: list[str] = []
    for model in models:
        name = model.strip()
        if name and name not in result:
            result.append(name)
    if len(result) > MAX_MODEL_LIMITS:
        raise InvalidArgument(f"model_limits holds at most {MAX_MODEL_LIMITS} models")
    return result


def fields_from_proto(token: pb.Token, *, status: int, now: int, creating: bool) -> TokenFields:
    """The stored fields a create or full update asks for, validated."""
    limit = token.rate_limit
    if limit.period_ms < 0 or limit.count < 0 or limit.success < 0:
        raise InvalidArgument("rate limit values must not be negative")
    fields = TokenFields(
        name=check_name(token.name),
        status=check_status(status),
        expired_time=check_expiry(token.expired_time, now=now, creating=creating),
        unlimited_quota=token.unlimited_quota,
        model_limits_enabled=token.model_limits_enabled,
        model_limits=_model_limits(list(token.model_limits)),
        allow_ips=normalize_allow_list(list(token.allow_ips)),
        group=token.group.strip(),
        rate_limit_enabled=limit.enabled,
        rate_limit_period=limit.period_ms // 1000 or DEFAULT_RATE_PERIOD,
        rate_limit_count=limit.count or DEFAULT_RATE_COUNT,
        rate_limit_success=limit.success or DEFAULT_RATE_SUCCESS,
    )
    check_enable(fields.status, fields.expired_time, now=now)
    return fields
