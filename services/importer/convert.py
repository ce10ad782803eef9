"""Pure conversions of upstream rows (dicts of column -> value) into our rows.

Each returns the values to store plus notes: what was changed on the way in (kept in the
report). A row that cannot be stored at all raises Unmappable with the reason. Source values
come from three drivers, so every reader here accepts int/str/bool/None alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from services.accounts import channel_rules
from services.accounts.ipnets import normalize_allow_list
from services.accounts.option_registry import REGISTRY
from services.accounts.option_rules import validate as validate_option
from services.accounts.records import StoredChannel
from services.shared.errors import InvalidArgument
from services.shared.options import PRICING_OPTION_KEYS, SHARED_OPTION_KEYS

Source = dict[str, Any]
ROLES = {0: 1, 1: 1, 10: 10, 100: 100}  # upstream guest (0) has no equivalent: a common user
MAX_TOKEN_NAME = 30
BILLING_JSON_OPTIONS = frozenset(
    {"ModelRatio", "ModelPrice", "CompletionRatio", "CacheRatio", "GroupRatio"}
)
BILLING_NUMBER_OPTIONS = frozenset({"QuotaPerUnit", "PreConsumedQuota"})


class Unmappable(ValueError):
    """The row cannot be stored here; the message is the reason shown in the report."""


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value).strip()


def integer(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "t", "yes")
    return bool(value)


def epoch(value: Any) -> int | None:
    """A GORM soft-delete column (datetime, its text, or unix seconds) as unix seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp())
    if isinstance(value, int | float):
        return int(value)
    raw = text(value).replace(" ", "T", 1)
    try:  # SQLite keeps "2024-05-01 10:00:00.123+08:00"; Python parses up to 6 fraction digits
        head, _, tail = raw.partition(".")
        if tail:
            digits = len(tail) - len(tail.lstrip("0123456789"))
            raw = f"{head}.{tail[: min(digits, 6)]}{tail[digits:]}"
        moment = datetime.fromisoformat(raw.removesuffix("Z"))
    except ValueError:
        return int(datetime.now(UTC).timestamp())
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def csv_list(value: Any) -> list[str]:
    items: list[str] = []
    for part in text(value).split(","):
        item = part.strip()
        if item and item not in items:
            items.append(item)
    return items


@dataclass(frozen=True, slots=True)
class User:
    username: str
    password_hash: str
    display_name: str
    email: str
    role: int
    status: int
    group: str
    aff_code: str
    aff_count: int
    source_inviter_id: int
    setting: str
    access_token: str
    github_id: str
    oidc_id: str
    wechat_id: str
    telegram_id: str
    linux_do_id: str
    idc_flare_id: str
    created_at: int
    deleted_at: int | None
    quota: int
    subscription_quota: int
    used_quota: int
    request_count: int
    aff_quota: int
    aff_history: int


def user(row: Source, *, now: int) -> tuple[User, list[str]]:
    notes: list[str] = []
    username = text(row.get("username"))
    if not username:
        raise Unmappable("no username")
    role = ROLES.get(integer(row.get("role"), 1))
    if role is None:
        role = 1
        notes.append("unknown role imported as common user")
    status = integer(row.get("status"), 1)
    if status not in (1, 2):
        notes.append(f"status {status} imported as disabled")
        status = 2
    setting = text(row.get("setting"))
    if setting and not _is_json_object(setting):
        notes.append("user setting is not a JSON object: dropped")
        setting = ""
    quota, subscription = integer(row.get("quota")), integer(row.get("subscription_quota"))
    if quota < 0 or subscription < 0:
        notes.append("negative balance imported as 0")
    if text(row.get("lark_id")):
        notes.append("Lark binding has no equivalent here: dropped")
    return User(
        username=username,
        password_hash=text(row.get("password")),
        display_name=text(row.get("display_name")),
        email=text(row.get("email")),
        role=role,
        status=status,
        group=text(row.get("group")) or "default",
        aff_code=text(row.get("aff_code")),
        aff_count=integer(row.get("aff_count")),
        source_inviter_id=integer(row.get("inviter_id")),
        setting=setting,
        access_token=text(row.get("access_token")),
        github_id=text(row.get("github_id")),
        oidc_id=text(row.get("oidc_id")),
        wechat_id=text(row.get("wechat_id")),
        telegram_id=text(row.get("telegram_id")),
        linux_do_id=text(row.get("linux_do_id")),
        idc_flare_id=text(row.get("idc_flare_id")),
        created_at=integer(row.get("created_at")) or now,
        deleted_at=epoch(row.get("deleted_at")),
        quota=max(quota, 0),
        subscription_quota=max(subscription, 0),
        used_quota=integer(row.get("used_quota")),
        request_count=integer(row.get("request_count")),
        aff_quota=max(integer(row.get("aff_quota")), 0),
        aff_history=integer(row.get("aff_history")),
    ), notes


def _is_json_object(value: str) -> bool:
    try:
        return isinstance(json.loads(value), dict)
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Token:
    source_user_id: int
    key: str
    name: str
    status: int
    created_time: int
    accessed_time: int
    expired_time: int
    remain_quota: int
    used_quota: int
    unlimited: bool
    model_limits_enabled: bool
    model_limits: list[str]
    allow_ips: list[str]
    group: str
    rate_limit_enabled: bool
    rate_limit_period: int
    rate_limit_count: int
    rate_limit_success: int


def token(row: Source) -> tuple[Token, list[str]]:
    notes: list[str] = []
    if epoch(row.get("deleted_at")) is not None:
        raise Unmappable("deleted key")
    key = text(row.get("key")).removeprefix("sk-")
    if not key:
        raise Unmappable("empty key")
    name = text(row.get("name")) or "imported"
    if len(name) > MAX_TOKEN_NAME:
        notes.append(f"name cut to {MAX_TOKEN_NAME} characters")
        name = name[:MAX_TOKEN_NAME]
    status = integer(row.get("status"), 1)
    if status not in (1, 2, 3, 4):
        notes.append(f"status {status} imported as disabled")
        status = 2
    if "model_limits" in row:  # new-api / Veloera: a switch and a comma list
        limits = csv_list(row.get("model_limits"))
        limits_enabled = flag(row.get("model_limits_enabled")) and bool(limits)
    else:  # one-api: `models`, empty means every model
        limits = csv_list(row.get("models"))
        limits_enabled = bool(limits)
    raw_ips = text(row.get("allow_ips")).splitlines() + csv_list(row.get("subnet"))
    try:
        allow_ips = normalize_allow_list(raw_ips)
    except InvalidArgument:  # dropping an entry would widen access: keep the key, disabled
        notes.append("IP allow-list has an invalid entry: key imported disabled")
        allow_ips, status = [], 2
    unlimited = flag(row.get("unlimited_quota"))
    remain = integer(row.get("remain_quota"))
    if remain < 0 and not unlimited:
        notes.append("negative remaining quota imported as 0")
        remain = 0
    return Token(
        source_user_id=integer(row.get("user_id")),
        key=key,
        name=name,
        status=status,
        created_time=integer(row.get("created_time")),
        accessed_time=integer(row.get("accessed_time")),
        expired_time=integer(row.get("expired_time"), -1),
        remain_quota=remain,
        used_quota=integer(row.get("used_quota")),
        unlimited=unlimited,
        model_limits_enabled=limits_enabled,
        model_limits=limits,
        allow_ips=allow_ips,
        group=text(row.get("group")),
        rate_limit_enabled=flag(row.get("rate_limit_enabled")),
        rate_limit_period=integer(row.get("rate_limit_period"), 60) or 60,
        rate_limit_count=integer(row.get("rate_limit_count"), 1000),
        rate_limit_success=integer(row.get("rate_limit_success"), 10),
    ), notes


@dataclass(frozen=True, slots=True)
class Channel(StoredChannel):
    """A channel to import: what accounts stores, and its keys in plain text."""

    keys: list[str]


def channel(row: Source, *, now: int) -> tuple[Channel, list[str]]:
    notes: list[str] = []
    type_id, status = integer(row.get("type")), integer(row.get("status"), 1)
    try:
        channel_rules.check_type(type_id)
    except InvalidArgument as exc:
        notes.append(f"{exc.message}: imported disabled")
        status = 2
    if status not in (0, 1, 2, 3):
        status = 2
    fields = {}
    for field in channel_rules.JSON_OBJECT_FIELDS:
        value = text(row.get(field))
        try:
            fields[field] = channel_rules.check_json_object(field, value)
        except InvalidArgument:
            notes.append(f"{field} is not a JSON object: dropped")
            fields[field] = ""
    if text(row.get("config")) not in ("", "{}"):
        notes.append("one-api `config` (region, keys, API version) needs re-entering")
    keys = channel_rules.split_keys(type_id, text(row.get("key")))
    if not keys:
        notes.append("no key")
    info = _json_object(text(row.get("other_info")))
    name = text(row.get("name")) or f"channel {integer(row.get('id'))}"
    return Channel(
        type=type_id,
        name=name,
        keys=keys,
        base_url=text(row.get("base_url")),
        models=channel_rules.clean_list("models", csv_list(row.get("models"))),
        groups=channel_rules.clean_list("groups", csv_list(row.get("group"))) or ["default"],
        priority=integer(row.get("priority")),
        weight=max(integer(row.get("weight")), 0),
        status=status,
        model_mapping=fields["model_mapping"],
        status_code_mapping=fields["status_code_mapping"],
        model_prefix=text(row.get("model_prefix")),
        system_prompt=text(row.get("system_prompt")),
        tag=text(row.get("tag")),
        test_model=text(row.get("test_model")),
        openai_organization=text(row.get("openai_organization")),
        other=text(row.get("other")),
        setting=fields["setting"],
        param_override=fields["param_override"],
        auto_ban=flag(row.get("auto_ban", 1)),
        created_time=integer(row.get("created_time")) or now,
        test_time=integer(row.get("test_time")),
        response_time=integer(row.get("response_time")),
        balance=float(row.get("balance") or 0),
        balance_updated_time=integer(row.get("balance_updated_time")),
        status_reason=text(info.get("status_reason")),
        status_time=integer(info.get("status_time")),
    ), notes


def _json_object(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value) if value else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


@dataclass(frozen=True, slots=True)
class Redemption:
    source_user_id: int
    key: str
    status: int
    name: str
    quota: int
    created_time: int
    redeemed_time: int
    source_used_user_id: int
    valid_from: int
    valid_until: int
    is_gift: bool
    max_uses: int
    used_count: int


def redemption(row: Source) -> tuple[Redemption, list[str]]:
    notes: list[str] = []
    if epoch(row.get("deleted_at")) is not None:
        raise Unmappable("deleted code")
    key = text(row.get("key"))
    if not key:
        raise Unmappable("empty code")
    status = integer(row.get("status"), 1)
    if status not in (1, 2, 3):
        status = 2
    is_gift = flag(row.get("is_gift"))
    max_uses = integer(row.get("max_uses"), 1) if "max_uses" in row else 1
    used_count = integer(row.get("used_count")) if "used_count" in row else int(status == 3)
    if max_uses >= 0 and used_count > max_uses:
        used_count = max_uses
    valid_from = integer(row.get("valid_from"))
    valid_until = integer(row.get("valid_until")) or max(integer(row.get("expired_time")), 0)
    if valid_from and valid_until and valid_from >= valid_until:
        raise Unmappable("validity window ends before it starts")
    return Redemption(
        source_user_id=integer(row.get("user_id")),
        key=key,
        status=status,
        name=text(row.get("name")),
        quota=max(integer(row.get("quota"), 100), 0),
        created_time=integer(row.get("created_time")),
        redeemed_time=integer(row.get("redeemed_time")),
        source_used_user_id=integer(row.get("used_user_id")),
        valid_from=valid_from,
        valid_until=valid_until,
        is_gift=is_gift,
        max_uses=max_uses,
        used_count=used_count,
    ), notes


# Upstream option keys spelled differently here.
OPTION_RENAMES: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class Option:
    key: str
    value: str
    to_accounts: bool
    to_billing: bool


def option(key: str, value: str) -> Option:
    """Where an upstream option goes; Unmappable for unknown keys and invalid values."""
    key = OPTION_RENAMES.get(key, key)
    in_accounts, in_billing = key in REGISTRY, key in PRICING_OPTION_KEYS
    if not in_accounts and not in_billing:
        raise Unmappable(f"unknown option {key}")
    if in_accounts:
        try:
            value = validate_option(key, value)
        except InvalidArgument as exc:
            raise Unmappable(f"option {key}: {exc.message}") from None
    elif key in BILLING_JSON_OPTIONS and not _is_json_object(value or "{}"):
        raise Unmappable(f"option {key} is not a JSON object")
    elif key in BILLING_NUMBER_OPTIONS:
        try:
            float(value)
        except ValueError:
            raise Unmappable(f"option {key} is not a number") from None
    return Option(key, value, in_accounts, in_billing or key in SHARED_OPTION_KEYS)


def log_other(value: Any) -> str:
    """The `other` JSON of a log row; anything that is not a JSON object becomes {}."""
    raw = text(value)
    if not raw or "\\u0000" in raw:  # PostgreSQL's jsonb refuses the NUL character
        return "{}"
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "{}"
    return raw if isinstance(parsed, dict) else "{}"
