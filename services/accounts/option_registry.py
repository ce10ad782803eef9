"""The typed registry of every runtime option accounts stores (upstream `model/option.go`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from services.accounts.channel_rules import DEFAULT_DISABLE_KEYWORDS
from services.shared.options import PRICING_OPTION_KEYS, SHARED_OPTION_KEYS

DEFAULT_USABLE_GROUPS = '{"default":"默认分组","vip":"vip分组"}'
DEFAULT_EMAIL_WHITELIST = (
    "gmail.com,163.com,126.com,qq.com,outlook.com,hotmail.com,icloud.com,yahoo.com,foxmail.com"
)
DEFAULT_CHATS = json.dumps(
    [
        {"NextChat": "https://app.nextchat.dev/#/?settings={\"key\":\"{key}\",\"url\":\"{address}\"}"},
        {"LobeChat": "https://chat-preview.lobehub.com/?settings={\"keyVaults\":{\"openai\":{\"apiKey\":\"{key}\",\"baseURL\":\"{address}/v1\"}}}"},
        {"AIaW": "https://aiaw.app/set-provider?provider={\"type\":\"openai\",\"settings\":{\"apiKey\":\"{key}\",\"baseURL\":\"{address}/v1\",\"compatibility\":\"strict\"}}"},
        {"AMA 问天": "ama://set-api-key?server={address}&key={key}"},
        {"OpenCat": "opencat://team/join?domain={address}&token={key}"},
    ],
    ensure_ascii=False,
)  # fmt: skip


class Kind(Enum):
    """How an option's text value is parsed and validated."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STR = "str"
    JSON_OBJECT = "json-object"
    JSON_LIST = "json-list"
    LINES = "newline-list"
    CSV = "comma-list"


@dataclass(frozen=True, slots=True)
class OptionSpec:
    key: str
    kind: Kind
    default: str = ""
    minimum: float | None = None
    choices: frozenset[str] | None = None


def _b(key: str, default: bool = False) -> OptionSpec:
    return OptionSpec(key, Kind.BOOL, "true" if default else "false")


def _i(key: str, default: int = 0, minimum: float | None = 0) -> OptionSpec:
    return OptionSpec(key, Kind.INT, str(default), minimum=minimum)


def _f(key: str, default: float = 0.0, minimum: float | None = 0) -> OptionSpec:
    return OptionSpec(key, Kind.FLOAT, repr(default), minimum=minimum)


def _s(key: str, default: str = "") -> OptionSpec:
    return OptionSpec(key, Kind.STR, default)


def _o(key: str, default: str = "{}") -> OptionSpec:
    return OptionSpec(key, Kind.JSON_OBJECT, default)


def _l(key: str, default: str = "[]") -> OptionSpec:
    return OptionSpec(key, Kind.JSON_LIST, default)


_SPECS: tuple[OptionSpec, ...] = (
    # Site / branding
    _s("SystemName", "Veloera"), _s("Logo"), _s("Footer"), _s("Notice"), _s("About"),
    _s("HomePageContent"), _s("ServerAddress"), _s("TopUpLink"), _l("Chats", DEFAULT_CHATS),
    _b("DefaultCollapseSidebar"), _b("DisplayInCurrencyEnabled", True),
    _b("DisplayTokenStatEnabled", True), _b("DrawingEnabled", True), _b("TaskEnabled", True),
    _b("DataExportEnabled", True), _i("DataExportInterval", 5, minimum=1),
    OptionSpec("DataExportDefaultTime", Kind.STR, "hour", choices=frozenset({"hour", "day",
                                                                           "week"})),
    _s("custom_head_html"), _s("global_css"), _s("global_js"),
    # Auth
    _b("PasswordLoginEnabled", True), _b("PasswordRegisterEnabled", True),
    _b("RegisterEnabled", True), _b("EmailVerificationEnabled"),
    _b("EmailDomainRestrictionEnabled"), _b("EmailAliasRestrictionEnabled"),
    OptionSpec("EmailDomainWhitelist", Kind.CSV, DEFAULT_EMAIL_WHITELIST),
    _b("GitHubOAuthEnabled"), _s("GitHubClientId"), _s("GitHubClientSecret"),
    _b("LinuxDOOAuthEnabled"), _s("LinuxDOClientId"), _s("LinuxDOClientSecret"),
    _i("LinuxDOMinimumTrustLevel"), _b("IDCFlareOAuthEnabled"), _s("IDCFlareClientId"),
    _s("IDCFlareClientSecret"), _i("IDCFlareMinimumTrustLevel"), _b("TelegramOAuthEnabled"),
    _s("TelegramBotToken"), _s("TelegramBotName"), _b("WeChatAuthEnabled"),
    _s("WeChatServerAddress"), _s("WeChatServerToken"), _s("WeChatAccountQRCodeImageURL"),
    _b("TurnstileCheckEnabled"), _s("TurnstileSiteKey"), _s("TurnstileSecretKey"),
    _b("oidc.enabled"), _s("oidc.client_id"), _s("oidc.client_secret"), _s("oidc.well_known"),
    _s("oidc.authorization_endpoint"), _s("oidc.token_endpoint"), _s("oidc.user_info_endpoint"),
    # SMTP
    _s("SMTPServer"), OptionSpec("SMTPPort", Kind.INT, "587", minimum=1),
    _b("SMTPSSLEnabled"), _s("SMTPAccount"), _s("SMTPFrom"), _s("SMTPToken"),
    # Quota / growth (balances themselves are billing's)
    _i("QuotaForNewUser"), _i("QuotaForInviter"), _i("QuotaForInvitee"), _b("AffEnabled", True),
    _b("RebateEnabled"), _f("RebatePercentage"), _i("QuotaRemindThreshold", 1000),
    _b("CheckInEnabled"), _i("CheckInQuota", 1000), _i("CheckInMaxQuota"),
    _s("CheckInTimeZone", "UTC"),
    # Payment
    _s("PayAddress"), _s("CustomCallbackAddress"), _s("EpayId"), _s("EpayKey"),
    _f("Price", 7.3), _i("MinTopUp", 1), _o("TopupGroupRatio"),
    # Pricing-related options accounts keeps (the ratio tables themselves are billing's)
    _o("UserUsableGroups", DEFAULT_USABLE_GROUPS), _b("fallback_pricing_enabled"),
    _f("fallback_single_price"), _f("fallback_input_ratio"), _f("fallback_completion_ratio"),
    _b("redirect_billing_enabled"), _b("SelfUseModeEnabled"), _b("DemoSiteEnabled"),
    _o("global_model_mapping", '{"mapping":{}}'),
    # Channels / relay
    _i("RetryTimes"), _b("AutomaticDisableChannelEnabled"), _b("AutomaticEnableChannelEnabled"),
    _f("ChannelDisableThreshold", 5.0),
    OptionSpec("AutomaticDisableKeywords", Kind.LINES, "\n".join(DEFAULT_DISABLE_KEYWORDS)),
    # Logs
    _b("LogConsumeEnabled", True), _b("LogChatContentEnabled"), _b("LogErrorEnabled"),
    # Rate limit
    _b("ModelRequestRateLimitEnabled"), _i("ModelRequestRateLimitDurationMinutes", 1, minimum=1),
    _i("ModelRequestRateLimitCount"), _i("ModelRequestRateLimitSuccessCount", 1000),
    # Safety
    _b("CheckSensitiveEnabled", True), _b("CheckSensitiveOnPromptEnabled", True),
    _b("StopOnSensitiveEnabled"), _i("StreamCacheQueueLength"),
    OptionSpec("SensitiveWords", Kind.LINES, "test_sensitive"),
    _b("SafeCheckExemptEnabled"), _s("SafeCheckExemptGroup", "nsfw-ok"),
    # Midjourney
    _b("MjNotifyEnabled"), _b("MjAccountFilterEnabled"), _b("MjModeClearEnabled"),
    _b("MjForwardUrlEnabled"), _b("MjActionCheckSuccessEnabled", True),
    # Worker / proxy
    _s("WorkerUrl"), _s("WorkerValidKey"), _b("ReverseProxyEnabled"),
    OptionSpec(
        "ReverseProxyProvider", Kind.STR, "nginx", choices=frozenset({"nginx", "cloudflare"})
    ),
    # Legacy permissions
    _i("FileUploadPermission"), _i("FileDownloadPermission"), _i("ImageUploadPermission"),
    _i("ImageDownloadPermission"),
    # Hierarchical settings
    _b("global.pass_through_request_enabled"), _b("global.hide_upstream_error_enabled"),
    _b("global.block_browser_extension_enabled"), _b("global.rate_limit_exempt_enabled"),
    _s("global.rate_limit_exempt_group", "bulk-ok"), _b("global.safe_check_exempt_enabled"),
    _s("global.safe_check_exempt_group", "nsfw-ok"), _b("global.auto_retry_enabled"),
    _i("global.auto_retry_count", 3), _b("global.auto_retry_force_channel_switch"),
    _s("global.auto_retry_status_codes", "5xx,4xx"),
    _s("general_setting.docs_link", "https://docs.newapi.pro"),
    _b("general_setting.ping_interval_enabled"),
    _i("general_setting.ping_interval_seconds", 60, minimum=1),
    _o("claude.model_headers_settings"), _o("claude.default_max_tokens", '{"default":8192}'),
    _b("claude.thinking_adapter_enabled", True),
    _f("claude.thinking_adapter_budget_tokens_percentage", 0.8),
    _o("gemini.safety_settings"), _o("gemini.version_settings", '{"default":"v1beta"}'),
    _l("gemini.supported_imagine_models"), _b("gemini.thinking_adapter_enabled"),
    _f("gemini.thinking_adapter_budget_tokens_percentage", 0.6),
    _l("gemini.models_supported_thinking_budget"),
)  # fmt: skip

# Keys billing owns (PRICING_OPTION_KEYS, except the shared ones) are never accounts' options.
_BILLING_KEYS = PRICING_OPTION_KEYS - SHARED_OPTION_KEYS
REGISTRY: MappingProxyType[str, OptionSpec] = MappingProxyType(
    {s.key: s for s in _SPECS if s.key not in _BILLING_KEYS}
)
DEFAULTS: MappingProxyType[str, str] = MappingProxyType(
    {key: spec.default for key, spec in REGISTRY.items()}
)

# A toggle that may be switched on only when these options hold a value.
PREREQUISITES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "GitHubOAuthEnabled": ("GitHubClientId", "GitHubClientSecret"),
        "LinuxDOOAuthEnabled": ("LinuxDOClientId", "LinuxDOClientSecret"),
        "IDCFlareOAuthEnabled": ("IDCFlareClientId", "IDCFlareClientSecret"),
        "TelegramOAuthEnabled": ("TelegramBotToken", "TelegramBotName"),
        "WeChatAuthEnabled": ("WeChatServerAddress", "WeChatServerToken"),
        "TurnstileCheckEnabled": ("TurnstileSiteKey", "TurnstileSecretKey"),
        "oidc.enabled": ("oidc.client_id", "oidc.client_secret", "oidc.well_known"),
        "EmailDomainRestrictionEnabled": ("EmailDomainWhitelist",),
        "EmailVerificationEnabled": ("SMTPServer",),
    }
)
