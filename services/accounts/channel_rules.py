"""Pure channel rules: validation of a channel save, key splitting, and auto-disable."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from services.accounts.channel_types import (
    CHANNEL_TYPES,
    GEMINI,
    JSON_KEY_TYPES,
    NO_ADAPTOR_YET,
    UNSUPPORTED_TYPES,
    VERTEX_AI,
)
from services.shared.addresses import is_private_host
from services.shared.errors import InvalidArgument
from services.shared.numbers import ascii_int

JSON_OBJECT_FIELDS = ("model_mapping", "status_code_mapping", "setting", "param_override")
SETTING_FIELDS = frozenset({"force_format", "thinking_to_content", "proxy", "stream_support"})
PROXY_SCHEMES = frozenset({"http", "https", "socks5", "socks5h"})
BASE_URL_SCHEMES = frozenset({"http", "https"})
MAX_URL_LENGTH = 2048
STREAM_SUPPORT = frozenset({"default", "NON_STREAM_ONLY"})
MAX_NAME_LENGTH = 255

DEFAULT_DISABLE_KEYWORDS = (
    "Your credit balance is too low",
    "This organization has been disabled.",
    "You exceeded your current quota",
    "Permission denied",
    "The security token included in the request is invalid",
    "Operation not allowed",
    "Your account is not authorized",
)
_DISABLE_CODES = frozenset({"invalid_api_key", "account_deactivated", "billing_not_active"})
_DISABLE_TYPES = frozenset(
    {
        "insufficient_quota",
        "insufficient_user_quota",
        "authentication_error",
        "permission_error",
        "forbidden",
    }
)
_KEY_SPLIT = re.compile(r"[\r\n,]+")
_LINE_SPLIT = re.compile(r"[\r\n]+")


def check_json_object(field: str, text: str) -> str:
    """Empty, or the text of a JSON object; anything else is an InvalidArgument."""
    if not text.strip():
        return ""
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"{field} must be a JSON object: invalid JSON") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be a JSON object, got {type(value).__name__}")
    return text


def check_type(type_id: int) -> None:
    if type_id in UNSUPPORTED_TYPES:
        raise InvalidArgument(
            f"channel type {type_id} is not supported: {UNSUPPORTED_TYPES[type_id]}",
            code="unsupported_channel_type",
        )
    if type_id not in CHANNEL_TYPES:
        raise InvalidArgument(f"unknown channel type {type_id}", code="unknown_channel_type")
    if type_id in NO_ADAPTOR_YET:
        raise InvalidArgument(
            f"channel type {type_id} ({CHANNEL_TYPES[type_id]}) is not supported yet: this relay "
            "has no adaptor for its API and would send the key to the wrong provider",
            code="unsupported_channel_type",
        )


def _parsed_object(field: str, text: str) -> dict[str, Any]:
    check_json_object(field, text)
    value: dict[str, Any] = json.loads(text) if text.strip() else {}
    return value


def check_model_mapping(text: str) -> str:
    """`{"client model": "upstream model"}` with non-empty string values."""
    for name, target in _parsed_object("model_mapping", text).items():
        if not name.strip() or not isinstance(target, str) or not target.strip():
            raise InvalidArgument("model_mapping must map model names to non-empty model names")
    return text.strip()


def check_status_code_mapping(text: str) -> str:
    """`{"400": "500"}`: HTTP status codes to HTTP status codes."""
    for source, target in _parsed_object("status_code_mapping", text).items():
        if not _is_status(source) or not _is_status(target):
            raise InvalidArgument("status_code_mapping must map status codes to status codes")
    return text.strip()


def _is_status(value: Any) -> bool:
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    code = ascii_int(text, max_digits=3)
    return code is not None and 100 <= code <= 599


def check_url(field: str, url: str, schemes: frozenset[str], *, allow_private: bool) -> str:
    """An absolute URL of one of `schemes` with a host (and a valid port); a private or
    loopback host only when the operator allows it (CHANNEL_PRIVATE_ADDRESSES)."""
    url = url.strip()
    if not url:
        return ""
    allowed = " or ".join(sorted(schemes))
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _port = parts.port
    except ValueError:
        raise InvalidArgument(f"{field} must be an {allowed} URL with a valid host") from None
    if len(url) > MAX_URL_LENGTH or parts.scheme.lower() not in schemes or not host:
        raise InvalidArgument(f"{field} must be an {allowed} URL with a host")
    if not allow_private and is_private_host(host):
        raise InvalidArgument(
            f"{field} points at a private or loopback address; the operator allows those with "
            "CHANNEL_PRIVATE_ADDRESSES=true"
        )
    return url


def proxy_of(setting: str) -> str:
    """The `proxy` of a stored (already validated) setting JSON; "" when none."""
    try:
        value = json.loads(setting) if setting.strip() else {}
    except ValueError:
        return ""
    proxy = value.get("proxy") if isinstance(value, dict) else None
    return proxy if isinstance(proxy, str) else ""


def check_setting(text: str, *, allow_private: bool = False) -> str:
    """force_format, thinking_to_content (bool), proxy (http/https/socks5 URL), stream_support."""
    values = _parsed_object("setting", text)
    unknown = set(values) - SETTING_FIELDS
    if unknown:
        raise InvalidArgument(f"setting has unknown fields: {', '.join(sorted(unknown))}")
    for name in ("force_format", "thinking_to_content"):
        if name in values and not isinstance(values[name], bool):
            raise InvalidArgument(f"setting.{name} must be true or false")
    proxy = values.get("proxy", "")
    if not isinstance(proxy, str):
        raise InvalidArgument("setting.proxy must be an http, https or socks5 URL")
    check_url("setting.proxy", proxy, PROXY_SCHEMES, allow_private=allow_private)
    if values.get("stream_support", "default") not in STREAM_SUPPORT:
        raise InvalidArgument("setting.stream_support must be default or NON_STREAM_ONLY")
    return text.strip()


def check_other(type_id: int, other: str) -> str:
    """Vertex AI keeps its region JSON in `other`; it must name a `default` region."""
    if type_id == VERTEX_AI and other.strip():
        try:
            regions = json.loads(other)
        except ValueError:
            raise InvalidArgument("Vertex AI regions (other) must be JSON") from None
        if not isinstance(regions, dict) or "default" not in regions:
            raise InvalidArgument('Vertex AI regions (other) must be a JSON object with "default"')
    return other


def clean_list(field: str, values: list[str]) -> list[str]:
    """Trimmed, de-duplicated, non-empty; model names keep their case."""
    result: list[str] = []
    for value in values:
        item = value.strip()
        if not item:
            continue
        if len(item) > MAX_NAME_LENGTH:
            raise InvalidArgument(f"{field} entries are at most {MAX_NAME_LENGTH} characters")
        if item not in result:
            result.append(item)
    return result


def split_keys(type_id: int, raw: str) -> list[str]:
    """Keys entered one per line or comma-separated; JSON-key types hold one key per line."""
    text = raw.strip()
    if not text:
        return []
    if type_id in JSON_KEY_TYPES:
        if text.startswith("{"):
            return [text]
        parts = _LINE_SPLIT.split(text)
    else:
        parts = _KEY_SPLIT.split(text)
    keys: list[str] = []
    for part in parts:
        key = part.strip()
        if key and key not in keys:
            keys.append(key)
    return keys


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed upstream attempt as the relay reported it."""

    channel_type: int
    status_code: int
    error_type: str
    error_code: str
    error_message: str
    local_error: bool


def should_disable(failure: Failure, keywords: list[str]) -> bool:
    """upstream `service/channel.go`: the failure proves the key is unusable (not a transient
    error).
    """
    if failure.local_error:
        return False
    if failure.status_code == 401:
        return True
    if failure.status_code == 403 and failure.channel_type == GEMINI:
        return True
    if failure.error_code in _DISABLE_CODES or failure.error_type in _DISABLE_TYPES:
        return True
    message = failure.error_message.lower()
    return any(word.strip() and word.strip().lower() in message for word in keywords)


def parse_keywords(option_value: str | None) -> list[str]:
    if option_value is None:
        return list(DEFAULT_DISABLE_KEYWORDS)
    return [line.strip() for line in option_value.splitlines() if line.strip()]


@dataclass(frozen=True, slots=True)
class TestVerdict:
    """What one channel test changes for its key (the channel follows its keys)."""

    disable_key: bool
    enable_key: bool
    too_slow: bool
    reason: str


def judge_test(
    failure: Failure | None,
    *,
    response_ms: int,
    threshold_seconds: float,
    keywords: list[str],
    auto_disable: bool,
    auto_enable: bool,
    key_enabled: bool,
    key_auto_disabled: bool,
) -> TestVerdict:
    """upstream `controller/channel-test.go` (testAllChannels): a key-killing failure or a
    response time above ChannelDisableThreshold (0: no limit) disables; a clean, fast pass
    re-enables what was disabled automatically. `failure` is None for a pass."""
    limit_ms = int(threshold_seconds * 1000)
    too_slow = limit_ms > 0 and response_ms > limit_ms
    reason = failure.error_message if failure is not None else ""
    if too_slow:
        reason = f"response time {response_ms / 1000:.2f}s is above {threshold_seconds:.2f}s"
    bad = too_slow or (failure is not None and should_disable(failure, keywords))
    return TestVerdict(
        disable_key=auto_disable and key_enabled and bad,
        enable_key=auto_enable and key_auto_disabled and failure is None and not too_slow,
        too_slow=too_slow,
        reason=reason,
    )


def parse_threshold(option_value: str | None) -> float:
    """ChannelDisableThreshold in seconds (default 5); unreadable or negative: the default."""
    try:
        value = float(option_value) if option_value is not None else 5.0
    except ValueError:
        return 5.0
    return value if value >= 0 else 5.0
