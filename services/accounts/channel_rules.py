"""Pure channel rules: validation of a channel save, key splitting, and auto-disable."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from services.accounts.channel_types import CHANNEL_TYPES, GEMINI, JSON_KEY_TYPES
from services.shared.errors import InvalidArgument

JSON_OBJECT_FIELDS = ("model_mapping", "status_code_mapping", "setting", "param_override")
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
    if type_id not in CHANNEL_TYPES:
        raise InvalidArgument(f"unknown channel type {type_id}", code="unknown_channel_type")


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
    """Reference §3.8: the failure proves the key is unusable (not a transient error)."""
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
