"""The sliding-window rule behind the console's rate limits (services.accounts.rate_limits)
and the web settings that configure them."""

from __future__ import annotations

import pytest

from services.accounts.rate_limits import verdict
from services.shared.config import ConfigError
from services.web.settings import RateLimit, load_settings


def test_the_previous_window_weighs_by_its_overlap() -> None:
    # Limit 10 per 100 s; 10 hits in the previous window, 30 s into this one: 7 still count.
    assert verdict(10, 3, 30.0, 100, 10).allowed
    refused = verdict(10, 4, 30.0, 100, 10)
    assert not refused.allowed and refused.retry_after >= 1
    assert verdict(0, 10, 99.0, 100, 10).allowed
    assert not verdict(0, 11, 99.0, 100, 10).allowed


def test_retry_after_is_when_one_more_hit_fits() -> None:
    # 20 hits already in this window (limit 20): wait into the next one until enough of it
    # has slid out that 20 * overlap + 1 <= 20.
    refused = verdict(0, 21, 10.0, 100, 20)
    assert not refused.allowed
    assert 90 <= refused.retry_after <= 100
    # At that moment the next window has begun: this one is its previous window.
    elapsed_then = 10.0 + refused.retry_after - 100
    assert verdict(21, 1, elapsed_then, 100, 20).allowed
    assert not verdict(21, 1, elapsed_then - 1, 100, 20).allowed


SECRET_ENV = {"SESSION_SECRET": "s", "INTERNAL_TOKEN_WEB": "w" * 32}


def test_rate_limits_are_on_by_default_and_switchable() -> None:
    settings = load_settings(SECRET_ENV)
    assert settings.api_rate_limit == RateLimit(True, 180, 180)
    assert settings.web_rate_limit == RateLimit(True, 60, 180)
    assert settings.critical_rate_limit == RateLimit(True, 20, 1200)
    off = load_settings({**SECRET_ENV, "CRITICAL_RATE_LIMIT_ENABLE": "false"})
    assert off.critical_rate_limit.enabled is False


def test_a_bad_trusted_proxy_list_fails_fast() -> None:
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        load_settings({**SECRET_ENV, "TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"})
