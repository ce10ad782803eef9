"""Protobuf messages to and from the Veloera (new-api) JSON shapes the console speaks."""

from __future__ import annotations

from typing import Any

import orjson
from veloera.accounts.v1 import accounts_pb2
from veloera.billing.v1 import billing_pb2

from services.web.api import ApiError

SECRET_MASK = "***"


def masked_setting(setting: str) -> str:
    """The user's settings JSON with `webhook_secret` masked: it signs the user's webhooks,
    so neither the user's own views nor an admin's may read it back."""
    try:
        parsed = orjson.loads(setting) if setting else None
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(parsed, dict) or not parsed.get("webhook_secret"):
        return setting
    return orjson.dumps({**parsed, "webhook_secret": SECRET_MASK}).decode()


def user_item(user: accounts_pb2.User, wallet: billing_pb2.Wallet | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "role": int(user.role),
        "status": int(user.status),
        "group": user.group or "default",
        "aff_code": user.aff_code,
        "aff_count": user.aff_count,
        "inviter_id": user.inviter_id,
        "setting": masked_setting(user.setting),
        "created_at": user.created_time,
        "github_id": user.github_id,
        "oidc_id": user.oidc_id,
        "wechat_id": user.wechat_id,
        "telegram_id": user.telegram_id,
        "linux_do_id": user.linux_do_id,
        "idc_flare_id": user.idc_flare_id,
    }
    if user.deleted:
        item["deleted"] = True
    if wallet is not None:
        item.update(wallet_fields(wallet))
    return item


def wallet_fields(wallet: billing_pb2.Wallet) -> dict[str, int]:
    return {
        "quota": wallet.quota,
        "used_quota": wallet.used_quota,
        "request_count": wallet.request_count,
        "subscription_quota": wallet.subscription_quota,
        "aff_quota": wallet.aff_quota,
        "aff_history_quota": wallet.aff_history,
    }


def token_item(
    token: accounts_pb2.Token, budget: billing_pb2.TokenBudget | None = None
) -> dict[str, Any]:
    return {
        "id": token.id,
        "user_id": token.user_id,
        "name": token.name,
        "key": token.key,
        "status": int(token.status),
        "remain_quota": budget.remain_quota if budget else 0,
        "used_quota": budget.used_quota if budget else 0,
        "unlimited_quota": budget.unlimited if budget else token.unlimited_quota,
        "expired_time": token.expired_time,
        "model_limits_enabled": token.model_limits_enabled,
        "model_limits": ",".join(token.model_limits),
        "allow_ips": "\n".join(token.allow_ips),
        "group": token.group,
        "created_time": token.created_time,
        "accessed_time": token.accessed_time,
        "rate_limit_enabled": token.rate_limit.enabled,
        "rate_limit_period": token.rate_limit.period_ms // 1000,
        "rate_limit_count": token.rate_limit.count,
        "rate_limit_success": token.rate_limit.success,
    }


_CHANNEL_SCALARS = (
    "id",
    "type",
    "name",
    "base_url",
    "priority",
    "weight",
    "model_mapping",
    "status_code_mapping",
    "model_prefix",
    "system_prompt",
    "tag",
    "test_model",
    "openai_organization",
    "other",
    "setting",
    "param_override",
    "created_time",
    "test_time",
    "balance",
    "balance_updated_time",
    "used_quota",
    "status_reason",
    "status_time",
)


def channel_item(channel: accounts_pb2.Channel, *, with_key: bool) -> dict[str, Any]:
    item: dict[str, Any] = {name: getattr(channel, name) for name in _CHANNEL_SCALARS}
    item["response_time"] = channel.response_ms  # the console's name (ms)
    item["status"] = int(channel.status)
    item["key"] = channel.key if with_key else ""
    item["models"] = ",".join(channel.models)
    item["group"] = ",".join(channel.groups)
    item["auto_ban"] = 1 if channel.auto_ban else 0
    item["keys"] = [
        {
            "id": key.id,
            "index": key.index,
            "status": int(key.status),
            "last_error": key.last_error,
            "used_quota": key.used_quota,
            "request_count": key.request_count,
            "failure_count": key.failure_count,
        }
        for key in channel.keys
    ]
    return item


_JSON_OBJECT_FIELDS = ("model_mapping", "status_code_mapping", "param_override", "setting")
_CHANNEL_TEXT_FIELDS = (
    "name",
    "base_url",
    "model_prefix",
    "system_prompt",
    "tag",
    "test_model",
    "openai_organization",
    "other",
)


def split_list(value: Any, separators: str = ",") -> list[str]:
    """Comma (or newline) separated text, or a JSON list, to a clean list of strings."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value)
    for sep in separators[1:]:
        text = text.replace(sep, separators[0])
    return [part.strip() for part in text.split(separators[0]) if part.strip()]


def _json_object_text(name: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    try:
        parsed = orjson.loads(str(value))
    except orjson.JSONDecodeError as exc:
        raise ApiError(f"{name} must be a JSON object") from exc
    if not isinstance(parsed, dict):
        raise ApiError(f"{name} must be a JSON object")
    return str(value)


def _as_int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ApiError(f"{name} must be an integer") from exc


def apply_channel_body(channel: accounts_pb2.Channel, body: dict[str, Any]) -> None:
    """Copies the fields present in a Veloera channel body onto `channel` (validated)."""
    for name in _CHANNEL_TEXT_FIELDS:
        if name in body and body[name] is not None:
            setattr(channel, name, str(body[name]))
    for name in _JSON_OBJECT_FIELDS:
        if name in body:
            setattr(channel, name, _json_object_text(name, body[name]))
    for name in ("type", "priority", "weight", "status"):
        if name in body and body[name] is not None:
            setattr(channel, name, _as_int(name, body[name]))
    if "key" in body:
        channel.key = str(body["key"] or "")
    if "models" in body:
        channel.ClearField("models")
        channel.models.extend(split_list(body["models"]))
    if "group" in body or "groups" in body:
        channel.ClearField("groups")
        channel.groups.extend(split_list(body.get("group", body.get("groups"))))
    if "auto_ban" in body and body["auto_ban"] is not None:
        channel.auto_ban = bool(body["auto_ban"])


def log_item(entry: billing_pb2.LogEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "user_id": entry.user_id,
        "created_at": entry.created_time,
        "type": int(entry.type),
        "content": entry.content,
        "username": entry.username,
        "token_name": entry.token_name,
        "model_name": entry.model_name,
        "quota": entry.quota,
        "prompt_tokens": entry.prompt_tokens,
        "completion_tokens": entry.completion_tokens,
        "use_time": entry.elapsed_ms // 1000,
        "is_stream": entry.is_stream,
        "channel": entry.channel_id,
        "channel_name": entry.channel_name,
        "token_id": entry.token_id,
        "group": entry.group,
        "other": entry.other,
        "ip": entry.client_ip,
        "request_id": entry.request_id,
    }


def option_text(value: Any) -> str:
    """Option values arrive as text, bool or number; they are stored as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def paged(items: list[dict[str, Any]], total: int, page: int, size: int) -> dict[str, Any]:
    return {"items": items, "total": total, "page": page, "page_size": size}
