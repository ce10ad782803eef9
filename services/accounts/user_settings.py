"""Per-user settings (upstream `service/user_notify.go`): notification channel, threshold, webhook,
log IPs.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from services.accounts import user_rules
from services.shared.addresses import is_private_host
from services.shared.errors import InvalidArgument

NOTIFY_TYPES = frozenset({"email", "webhook"})
MAX_URL = 1024
MAX_SECRET = 256
_BOOL_FIELDS = ("accept_unset_model_ratio_model", "show_ip_in_logs")
KNOWN_FIELDS = frozenset(
    {
        "notify_type",
        "quota_warning_threshold",
        "webhook_url",
        "webhook_secret",
        "notification_email",
        *_BOOL_FIELDS,
    }
)


def check_setting(text: str, *, allow_private: bool = False) -> str:
    """The canonical JSON of a valid settings object ('' stays ''); a webhook at a private or
    loopback address only when the operator allows it (WEBHOOK_PRIVATE_ADDRESSES)."""
    if not text.strip():
        return ""
    try:
        parsed = json.loads(text)
    except ValueError:
        raise InvalidArgument("setting must be a JSON object: invalid JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidArgument("setting must be a JSON object")
    return json.dumps(
        normalise(parsed, allow_private=allow_private), ensure_ascii=False, sort_keys=True
    )


def normalise(values: dict[str, Any], *, allow_private: bool = False) -> dict[str, Any]:
    unknown = set(values) - KNOWN_FIELDS
    if unknown:
        raise InvalidArgument(f"unknown setting fields: {', '.join(sorted(unknown))}")
    result: dict[str, Any] = {}
    notify_type = values.get("notify_type", "email") or "email"
    if notify_type not in NOTIFY_TYPES:
        raise InvalidArgument("notify_type must be email or webhook")
    result["notify_type"] = notify_type
    result["quota_warning_threshold"] = _threshold(values.get("quota_warning_threshold", 0))
    url = str(values.get("webhook_url") or "").strip()
    if url:
        _check_url(url, allow_private=allow_private)
    elif notify_type == "webhook":
        raise InvalidArgument("webhook_url is required when notify_type is webhook")
    result["webhook_url"] = url
    secret = str(values.get("webhook_secret") or "")
    if len(secret) > MAX_SECRET:
        raise InvalidArgument(f"webhook_secret must be at most {MAX_SECRET} characters")
    result["webhook_secret"] = secret
    result["notification_email"] = user_rules.check_email(
        str(values.get("notification_email") or "")
    )
    for name in _BOOL_FIELDS:
        value = values.get(name, False)
        if not isinstance(value, bool):
            raise InvalidArgument(f"{name} must be true or false")
        result[name] = value
    return result


def _threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidArgument("quota_warning_threshold must be a number")
    try:
        number = float(value)
    except ValueError:
        raise InvalidArgument("quota_warning_threshold must be a number") from None
    if not number >= 0 or number == float("inf"):
        raise InvalidArgument("quota_warning_threshold must be 0 or more")
    return int(number) if number.is_integer() else number


def _check_url(url: str, *, allow_private: bool) -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _port = parts.port
    except ValueError:
        raise InvalidArgument("webhook_url must be an http:// or https:// URL") from None
    if len(url) > MAX_URL or parts.scheme not in {"http", "https"} or not host:
        raise InvalidArgument("webhook_url must be an http:// or https:// URL")
    if not allow_private and is_private_host(host):
        raise InvalidArgument(
            "webhook_url points at a private or loopback address; the operator allows those "
            "with WEBHOOK_PRIVATE_ADDRESSES=true"
        )
