"""Unit tests of the option registry, option validation and per-user settings."""

from __future__ import annotations

import re

import pytest

from services.accounts import channel_rules, option_rules, user_settings
from services.accounts.channel_types import CHANNEL_TYPES
from services.accounts.option_registry import DEFAULTS, REGISTRY, Kind
from services.shared.crypto import SecretBox
from services.shared.errors import FailedPrecondition, InvalidArgument
from services.shared.option_secrets import is_secret, plaintext_secrets, seal, unseal
from services.shared.options import PRICING_OPTION_KEYS, SHARED_OPTION_KEYS

REFERENCE_KEYS = [
    "SystemName",
    "Logo",
    "Footer",
    "Notice",
    "About",
    "HomePageContent",
    "ServerAddress",
    "TopUpLink",
    "Chats",
    "PasswordLoginEnabled",
    "PasswordRegisterEnabled",
    "RegisterEnabled",
    "EmailVerificationEnabled",
    "EmailDomainWhitelist",
    "GitHubClientSecret",
    "TurnstileSecretKey",
    "oidc.user_info_endpoint",
    "SMTPServer",
    "SMTPPort",
    "SMTPToken",
    "QuotaForNewUser",
    "AffEnabled",
    "CheckInMaxQuota",
    "EpayKey",
    "TopupGroupRatio",
    "fallback_single_price",
    "global_model_mapping",
    "RetryTimes",
    "AutomaticDisableKeywords",
    "LogErrorEnabled",
    "ModelRequestRateLimitSuccessCount",
    "SensitiveWords",
    "MjActionCheckSuccessEnabled",
    "WorkerValidKey",
    "ReverseProxyProvider",
    "ImageDownloadPermission",
    "global.auto_retry_status_codes",
    "general_setting.docs_link",
    "claude.default_max_tokens",
    "gemini.models_supported_thinking_budget",
]


def test_registry_covers_the_reference_options_except_billing_pricing() -> None:
    owned_by_billing = PRICING_OPTION_KEYS - SHARED_OPTION_KEYS
    assert set(REFERENCE_KEYS) - owned_by_billing <= set(REGISTRY)
    assert not owned_by_billing & set(REGISTRY)
    assert DEFAULTS["SMTPPort"] == "587" and DEFAULTS["RegisterEnabled"] == "true"
    for spec in REGISTRY.values():  # every default is itself valid
        assert option_rules.validate(spec.key, spec.default) is not None


@pytest.mark.parametrize(
    ("key", "raw", "stored"),
    [
        ("DrawingEnabled", "TRUE", "true"),
        ("DrawingEnabled", "0", "false"),
        ("RetryTimes", " 3 ", "3"),
        ("Price", "7", "7.0"),
        ("SensitiveWords", " a \n\n b ", "a\nb"),
        ("EmailDomainWhitelist", "a.com,\n b.com,", "a.com,b.com"),
    ],
)
def test_values_are_normalised(key: str, raw: str, stored: str) -> None:
    assert option_rules.validate(key, raw) == stored


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("Unknown", "x", "unknown option"),
        ("GroupRatio", "{}", "billing"),
        ("SMTPPort", "0", "at least 1"),
        ("Price", "nan", "finite"),
        ("UserUsableGroups", "[]", "JSON object"),
        ("gemini.supported_imagine_models", "{}", "JSON list"),
        ("DataExportDefaultTime", "year", "one of"),
        ("global_model_mapping", '{"mapping": {"v": []}}', "non-empty list"),
        ("global_model_mapping", '{"mapping": {"v": [{"model": "m", "priorities": "1"}]}}',
         "priorities"),
        ("SensitiveWords", "word\nregex:(a)\\1", "SensitiveWords: regex '(a)"),
        ("SensitiveWords", "/(?<=x)y/", "is not supported"),
    ],
)  # fmt: skip
def test_invalid_values_are_rejected(key: str, value: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        option_rules.validate(key, value)


def test_prerequisites_and_fallback_pricing() -> None:
    current = dict(DEFAULTS)
    with pytest.raises(FailedPrecondition, match="TurnstileSiteKey"):
        option_rules.check_prerequisites("TurnstileCheckEnabled", "true", current)
    ready = {**current, "TurnstileSiteKey": "s", "TurnstileSecretKey": "k"}
    option_rules.check_prerequisites("TurnstileCheckEnabled", "true", ready)
    with pytest.raises(FailedPrecondition, match="EmailDomainWhitelist"):
        option_rules.check_prerequisites(
            "EmailDomainWhitelist", "", {**current, "EmailDomainRestrictionEnabled": "true"}
        )
    with pytest.raises(FailedPrecondition, match="both ratios"):
        option_rules.check_prerequisites("fallback_pricing_enabled", "true", current)
    ratios = {**current, "fallback_input_ratio": "1", "fallback_completion_ratio": "2"}
    option_rules.check_prerequisites("fallback_pricing_enabled", "true", ratios)
    with pytest.raises(FailedPrecondition, match="mutually exclusive"):
        option_rules.check_prerequisites("fallback_single_price", "0.01", ratios)


def test_secrets_are_masked_for_the_audit() -> None:
    assert option_rules.masked("SMTPToken", "hunter2") == "***"
    assert option_rules.masked("SMTPToken", "") == ""
    assert option_rules.masked("SystemName", "Site") == "Site"
    assert REGISTRY["WorkerValidKey"].kind is Kind.STR and is_secret("WorkerValidKey")


def test_secret_options_are_sealed_at_rest() -> None:
    box = SecretBox("test-secret")
    stored = seal(box, "SMTPToken", "hunter2")
    assert stored.startswith("v1:") and "hunter2" not in stored
    assert unseal(box, "SMTPToken", stored) == "hunter2"
    assert seal(box, "SMTPToken", stored) == stored  # never sealed twice
    assert seal(box, "SystemName", "Site") == "Site"
    assert seal(box, "TurnstileSiteKey", "public") == "public"
    assert seal(box, "EpayKey", "") == ""
    assert unseal(box, "SMTPToken", "plain-from-before") == "plain-from-before"
    assert unseal(SecretBox("another-secret"), "SMTPToken", stored) == ""
    assert plaintext_secrets({"SMTPToken": "x", "EpayKey": stored, "Logo": "y"}) == {
        "SMTPToken": "x"
    }


def test_user_settings_are_normalised_and_validated() -> None:
    stored = user_settings.check_setting('{"notify_type": "webhook", '
                                         '"webhook_url": "http://h.example/x"}')  # fmt: skip
    assert '"quota_warning_threshold": 0' in stored
    for bad in (
        '{"notify_type": "webhook"}',
        '{"webhook_url": "javascript:alert(1)"}',
        '{"quota_warning_threshold": "-5"}',
        '{"accept_unset_model_ratio_model": 1}',
        '{"notification_email": "nope"}',
        "[]",
    ):
        with pytest.raises(InvalidArgument):
            user_settings.check_setting(bad)


def test_channel_types_of_the_reference_and_unsupported_ones() -> None:
    expected = set(range(1, 26)) | {27, 31} | set(range(33, 50))
    assert set(CHANNEL_TYPES) == expected
    channel_rules.check_type(49)
    for type_id in (21, 26, 999):
        with pytest.raises(InvalidArgument):
            channel_rules.check_type(type_id)
