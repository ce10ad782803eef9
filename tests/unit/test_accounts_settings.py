"""Unit tests of the accounts settings loader."""

from __future__ import annotations

import pytest

from services.accounts.settings import load_settings
from services.shared.config import ConfigError


def test_required_variables_fail_fast_naming_each_one() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({})
    message = str(caught.value)
    for name in (
        "DATABASE_URL",
        "NATS_URL",
        "CRYPTO_SECRET",
        "INTERNAL_TOKEN_RELAY",
        "INTERNAL_TOKEN_WEB",
        "INTERNAL_TOKEN_TASKS",
    ):
        assert name in message


RELAY_TOKEN = "r" * 40
WEB_TOKEN = "w" * 40
TASKS_TOKEN = "t" * 40


def test_defaults_and_secrets_are_masked() -> None:
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://x",
            "NATS_URL": "nats://y",
            "CRYPTO_SECRET": "s3cret",
            "INTERNAL_TOKEN_RELAY": RELAY_TOKEN,
            "INTERNAL_TOKEN_WEB": WEB_TOKEN,
            "INTERNAL_TOKEN_TASKS": TASKS_TOKEN,
            "NATS_PASSWORD_ACCOUNTS": "n4ts-pass",
        }
    )
    assert (settings.port, settings.metrics_port, settings.bind_host) == (50051, 9101, "127.0.0.1")
    for secret in ("s3cret", RELAY_TOKEN, WEB_TOKEN, TASKS_TOKEN, "n4ts-pass"):
        assert secret not in repr(settings)
    assert settings.crypto_secret.value == "s3cret"
    assert set(settings.caller_tokens) == {"relay", "web", "tasks"}  # admin only when set


def test_a_short_service_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="INTERNAL_TOKEN_WEB must be at least 32 characters"):
        load_settings(
            {
                "DATABASE_URL": "postgresql://x",
                "NATS_URL": "nats://y",
                "CRYPTO_SECRET": "s3cret",
                "INTERNAL_TOKEN_RELAY": RELAY_TOKEN,
                "INTERNAL_TOKEN_WEB": "short",
                "INTERNAL_TOKEN_TASKS": TASKS_TOKEN,
            }
        )
