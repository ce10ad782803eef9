"""Runtime options the relay acts on, parsed once per routing snapshot (never per request)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from services.shared.numbers import ascii_int
from services.shared.sensitive import SensitiveMatcher

logger = logging.getLogger(__name__)

DEFAULT_RETRY_STATUS_CODES = "5xx,4xx"
NEVER_AUTO_RETRY = frozenset({408, 504, 524})
DEFAULT_EXEMPT_GROUP = "nsfw-ok"


def _bool(options: Mapping[str, str], key: str, default: bool = False) -> bool:
    value = options.get(key)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("true", "1", "yes", "on")


def _int(options: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(options.get(key, "").strip())
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class StatusCodes:
    """`5xx,4xx,429` style: whole classes and exact codes."""

    classes: frozenset[int] = frozenset()
    exact: frozenset[int] = frozenset()

    @classmethod
    def parse(cls, text: str) -> StatusCodes:
        classes: set[int] = set()
        exact: set[int] = set()
        for raw in text.split(","):
            item = raw.strip().lower()
            if len(item) == 3 and item.endswith("xx") and item[0] in "0123456789":
                classes.add(int(item[0]))
            elif (code := ascii_int(item, max_digits=9)) is not None:
                exact.add(code)
        return cls(frozenset(classes), frozenset(exact))

    def matches(self, status: int) -> bool:
        return status in self.exact or status // 100 in self.classes


def _float(options: Mapping[str, str], key: str, default: float) -> float:
    try:
        value = float(options.get(key, "").strip())
    except ValueError:
        return default
    return value if 0 < value <= 1 else default


def _object(options: Mapping[str, str], key: str) -> dict[str, object]:
    text = options.get(key, "")
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        logger.warning("%s is not valid JSON; ignored", key)
        return {}
    return value if isinstance(value, dict) else {}


def _strings(options: Mapping[str, str], key: str) -> dict[str, str]:
    return {str(k): v for k, v in _object(options, key).items() if isinstance(v, str) and v}


def _model_headers(options: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """`claude.model_headers_settings`: model -> header -> values (joined with `,`)."""
    result: dict[str, dict[str, str]] = {}
    for model, headers in _object(options, "claude.model_headers_settings").items():
        if not isinstance(headers, dict):
            continue
        joined = {
            str(name): ",".join(str(v) for v in values) if isinstance(values, list) else str(values)
            for name, values in headers.items()
            if isinstance(values, list | str) and values
        }
        if joined:
            result[str(model)] = joined
    return result


def _max_tokens(options: Mapping[str, str]) -> dict[str, int]:
    """`claude.default_max_tokens`: model (or "default") -> max_tokens."""
    return {
        str(k): v
        for k, v in _object(options, "claude.default_max_tokens").items()
        if isinstance(v, int) and not isinstance(v, bool) and v > 0
    }


def _list(options: Mapping[str, str], key: str) -> frozenset[str]:
    try:
        value = orjson.loads(options.get(key, "") or "[]")
    except orjson.JSONDecodeError:
        return frozenset()
    return (
        frozenset(v for v in value if isinstance(v, str))
        if isinstance(value, list)
        else frozenset()
    )


@dataclass(frozen=True, slots=True)
class ProviderOptions:
    """The Claude and Gemini settings adaptors read (upstream `setting/model_setting/`)."""

    claude_headers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    claude_max_tokens: Mapping[str, int] = field(default_factory=dict)
    claude_thinking: bool = True
    claude_thinking_share: float = 0.8
    gemini_safety: Mapping[str, str] = field(default_factory=dict)
    gemini_versions: Mapping[str, str] = field(default_factory=dict)
    gemini_thinking: bool = False
    gemini_thinking_share: float = 0.6
    gemini_thinking_models: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> ProviderOptions:
        return cls(
            claude_headers=_model_headers(options),
            claude_max_tokens=_max_tokens(options),
            claude_thinking=_bool(options, "claude.thinking_adapter_enabled", True),
            claude_thinking_share=_float(
                options, "claude.thinking_adapter_budget_tokens_percentage", 0.8
            ),
            gemini_safety=_strings(options, "gemini.safety_settings"),
            gemini_versions=_strings(options, "gemini.version_settings"),
            gemini_thinking=_bool(options, "gemini.thinking_adapter_enabled"),
            gemini_thinking_share=_float(
                options, "gemini.thinking_adapter_budget_tokens_percentage", 0.6
            ),
            gemini_thinking_models=_list(options, "gemini.models_supported_thinking_budget"),
        )


DEFAULT_PROVIDER_OPTIONS = ProviderOptions()


def parse_global_mapping(text: str) -> dict[str, tuple[str, ...]]:
    """`{"mapping": {virtual: [{"model", "priorities"}]}}` → virtual → top-priority models."""
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        logger.warning("global_model_mapping is not valid JSON; ignored")
        return {}
    mapping = value.get("mapping") if isinstance(value, dict) else None
    if not isinstance(mapping, dict):
        return {}
    result: dict[str, tuple[str, ...]] = {}
    for virtual, items in mapping.items():
        entries: list[tuple[int, str]] = []
        for item in items if isinstance(items, list) else ():
            if isinstance(item, str) and item:
                entries.append((0, item))
            elif isinstance(item, dict) and isinstance(item.get("model"), str) and item["model"]:
                priority = item.get("priorities", item.get("priority", 0))
                entries.append((priority if isinstance(priority, int) else 0, item["model"]))
        if entries:
            top = max(p for p, _ in entries)
            result[str(virtual)] = tuple(m for p, m in entries if p == top)
    return result


@dataclass(frozen=True, slots=True)
class RelayOptions:
    auto_retry_enabled: bool = False
    auto_retry_count: int = 3
    auto_retry_codes: StatusCodes = field(default_factory=lambda: StatusCodes.parse("5xx,4xx"))
    force_channel_switch: bool = False
    pass_through: bool = False
    hide_upstream_error: bool = False
    block_browser_extension: bool = False
    check_sensitive: bool = True
    sensitive: SensitiveMatcher = field(default_factory=SensitiveMatcher)
    exempt_enabled: bool = False
    exempt_group: str = DEFAULT_EXEMPT_GROUP
    rate_limit_exempt_enabled: bool = False
    rate_limit_exempt_group: str = "bulk-ok"
    ping_enabled: bool = False
    ping_seconds: float = 60.0
    reverse_proxy: str = ""  # "", "nginx" or "cloudflare"
    global_mapping: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    log_error: bool = False  # LogErrorEnabled: a type-6 log row per failed request
    log_chat_content: bool = False  # LogChatContentEnabled: prompt and answer in the log row
    # Midjourney (upstream `relay/relay-mj.go`) and the task switches of the console.
    mj_notify: bool = False  # MjNotifyEnabled: a client's notifyHook is passed on
    mj_account_filter: bool = False  # MjAccountFilterEnabled: accountFilter is passed on
    mj_mode_clear: bool = False  # MjModeClearEnabled: --fast/--relax/--turbo stripped
    mj_forward_url: bool = False  # MjForwardUrlEnabled: image URLs point at /mj/image/{id}
    mj_action_check_success: bool = True  # MjActionCheckSuccessEnabled
    server_address: str = ""  # ServerAddress: this site's public address
    drawing_enabled: bool = True  # DrawingEnabled: the /mj routes
    task_enabled: bool = True  # TaskEnabled: the /suno routes
    providers: ProviderOptions = DEFAULT_PROVIDER_OPTIONS

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> RelayOptions:
        exempt_enabled = _bool(options, "global.safe_check_exempt_enabled") or _bool(
            options, "SafeCheckExemptEnabled"
        )
        exempt_group = (
            options.get("global.safe_check_exempt_group")
            or options.get("SafeCheckExemptGroup")
            or DEFAULT_EXEMPT_GROUP
        )
        proxy = ""
        if _bool(options, "ReverseProxyEnabled"):
            proxy = (options.get("ReverseProxyProvider") or "nginx").strip().lower()
        return cls(
            auto_retry_enabled=_bool(options, "global.auto_retry_enabled"),
            auto_retry_count=max(_int(options, "global.auto_retry_count", 3), 0),
            auto_retry_codes=StatusCodes.parse(
                options.get("global.auto_retry_status_codes") or DEFAULT_RETRY_STATUS_CODES
            ),
            force_channel_switch=_bool(options, "global.auto_retry_force_channel_switch"),
            pass_through=_bool(options, "global.pass_through_request_enabled"),
            hide_upstream_error=_bool(options, "global.hide_upstream_error_enabled"),
            block_browser_extension=_bool(options, "global.block_browser_extension_enabled"),
            check_sensitive=_bool(options, "CheckSensitiveEnabled", True)
            and _bool(options, "CheckSensitiveOnPromptEnabled", True),
            sensitive=SensitiveMatcher.parse(options.get("SensitiveWords", "")),
            exempt_enabled=exempt_enabled,
            exempt_group=exempt_group,
            rate_limit_exempt_enabled=_bool(options, "global.rate_limit_exempt_enabled"),
            rate_limit_exempt_group=options.get("global.rate_limit_exempt_group") or "bulk-ok",
            ping_enabled=_bool(options, "general_setting.ping_interval_enabled"),
            ping_seconds=float(max(_int(options, "general_setting.ping_interval_seconds", 60), 1)),
            reverse_proxy=proxy,
            global_mapping=parse_global_mapping(options.get("global_model_mapping", "")),
            log_error=_bool(options, "LogErrorEnabled"),
            log_chat_content=_bool(options, "LogChatContentEnabled"),
            mj_notify=_bool(options, "MjNotifyEnabled"),
            mj_account_filter=_bool(options, "MjAccountFilterEnabled"),
            mj_mode_clear=_bool(options, "MjModeClearEnabled"),
            mj_forward_url=_bool(options, "MjForwardUrlEnabled"),
            mj_action_check_success=_bool(options, "MjActionCheckSuccessEnabled", True),
            server_address=(options.get("ServerAddress") or "").strip(),
            drawing_enabled=_bool(options, "DrawingEnabled", True),
            task_enabled=_bool(options, "TaskEnabled", True),
            providers=ProviderOptions.parse(options),
        )

    def sensitive_applies(self, group: str) -> bool:
        if not self.check_sensitive or not self.sensitive:
            return False
        return not (self.exempt_enabled and group == self.exempt_group)

    def rate_limit_exempt(self, group: str) -> bool:
        return self.rate_limit_exempt_enabled and group == self.rate_limit_exempt_group
