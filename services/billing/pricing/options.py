"""Billing options beyond the pricing keys: fallback pricing, redirect billing, self-use mode,
check-in, model request rate limits and the quota warning threshold (defaults, validation)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.shared.errors import InvalidArgument
from services.shared.numbers import ascii_int

_BOOLS: dict[str, bool] = {
    "fallback_pricing_enabled": False,
    "redirect_billing_enabled": False,
    "SelfUseModeEnabled": False,
    "CheckInEnabled": False,
    "ModelRequestRateLimitEnabled": False,
    "RebateEnabled": False,
}
_NUMBERS: dict[str, float] = {
    "fallback_single_price": 0.0,
    "fallback_input_ratio": 0.0,
    "fallback_completion_ratio": 0.0,
    "RebatePercentage": 0.0,
    "Price": 7.3,  # payment currency per 1 USD of quota
}
_INTEGERS: dict[str, int] = {
    "CheckInQuota": 1000,
    "CheckInMaxQuota": 0,
    "ModelRequestRateLimitDurationMinutes": 1,
    "ModelRequestRateLimitCount": 0,
    "ModelRequestRateLimitSuccessCount": 1000,
    "QuotaRemindThreshold": 1000,
    "QuotaForNewUser": 0,
    "QuotaForInviter": 0,
    "QuotaForInvitee": 0,
    "MinTopUp": 1,
}
_STRINGS: dict[str, str] = {"CheckInTimeZone": "UTC", "PayAddress": "", "EpayId": "", "EpayKey": ""}
_MAPS: dict[str, dict[str, float]] = {"TopupGroupRatio": {"default": 1.0, "vip": 1.0, "svip": 1.0}}
# Output tokens held for a request without max_tokens, per model name or prefix ("*": any
# other model); merged over pricing/defaults.DEFAULT_OUTPUT_LIMITS.
_TOKEN_MAPS: dict[str, dict[str, int]] = {"ModelOutputLimit": {}}

EXTRA_DEFAULTS: dict[str, Any] = {
    **_BOOLS,
    **_NUMBERS,
    **_INTEGERS,
    **_STRINGS,
    **_MAPS,
    **_TOKEN_MAPS,
}
EXTRA_OPTION_KEYS = frozenset(EXTRA_DEFAULTS)


def _bad(key: str, what: str) -> InvalidArgument:
    return InvalidArgument(f"{key} must be {what}", code="invalid_option")


def parse_extra(key: str, value: Any, raw: str) -> Any:
    """The validated value of an extra option; `value` is the JSON-decoded text (or the raw
    text when it is not JSON)."""
    if key in _BOOLS:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
        raise _bad(key, "true or false")
    if key in _NUMBERS:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError as exc:
                raise _bad(key, "a non-negative number") from exc
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise _bad(key, "a non-negative number")
        return float(value)
    if key in _INTEGERS:
        if isinstance(value, str) and (parsed := ascii_int(value.strip())) is not None:
            value = parsed
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _bad(key, "a non-negative integer")
        if key == "ModelRequestRateLimitDurationMinutes" and value == 0:
            raise _bad(key, "at least 1")
        return value
    if key in _TOKEN_MAPS:
        if not isinstance(value, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value.values()
        ):
            raise _bad(key, "a JSON object of positive integers (tokens per model)")
        return {str(k): int(v) for k, v in value.items()}
    if key in _MAPS:
        if not isinstance(value, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value.values()
        ):
            raise _bad(key, "a JSON object of positive numbers")
        return {str(k): float(v) for k, v in value.items()}
    text = value if isinstance(value, str) else raw
    if key != "CheckInTimeZone":
        return text.strip()
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _bad(key, "an IANA time zone name such as UTC or Asia/Shanghai") from exc
    return text


def validate_fallback(values: dict[str, Any]) -> None:
    """Single-price mode and ratio mode are mutually exclusive; an enabled fallback needs one
    complete mode (ratio mode: both ratios > 0)."""
    single = float(values["fallback_single_price"])
    input_ratio = float(values["fallback_input_ratio"])
    output_ratio = float(values["fallback_completion_ratio"])
    ratio_mode = input_ratio > 0 or output_ratio > 0
    if single > 0 and ratio_mode:
        raise InvalidArgument(
            "fallback pricing: fallback_single_price and the fallback ratios are mutually "
            "exclusive; set one mode only",
            code="invalid_option",
        )
    if not values["fallback_pricing_enabled"]:
        return
    if single <= 0 and not ratio_mode:
        raise InvalidArgument(
            "fallback pricing is enabled but neither fallback_single_price nor the fallback "
            "ratios are set",
            code="invalid_option",
        )
    if ratio_mode and (input_ratio <= 0 or output_ratio <= 0):
        raise InvalidArgument(
            "fallback ratio mode needs both fallback_input_ratio and fallback_completion_ratio "
            "greater than 0",
            code="invalid_option",
        )
