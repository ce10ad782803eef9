"""Unit tests of the accounts settings loader."""

from __future__ import annotations

import pytest

from services.accounts.settings import load_settings
from services.shared.config import ConfigError


def test_required_variables_fail_fast_naming_each_one() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({})
    message = str(caught.value)
    for name in ("DATABASE_URL", "NATS_URL", "CRYPTO_SECRET"):
        assert name in message


def test_defaults_and_secrets_are_masked() -> None:
    settings = load_settings(
        {"DATABASE_URL": "postgresql://x", "NATS_URL": "nats://y", "CRYPTO_SECRET": "s3cret"}
    )
    assert (settings.port, settings.metrics_port, settings.bind_host) == (50051, 9101, "127.0.0.1")
    assert "s3cret" not in repr(settings)
    assert settings.crypto_secret.value == "s3cret"
