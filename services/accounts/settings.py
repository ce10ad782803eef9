"""Accounts service settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.accounts.notify.worker import NotifyConfig
from services.shared import nats_auth
from services.shared.config import Env, Secret
from services.shared.internal_auth import load_caller_tokens


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: Secret
    nats_url: str
    nats_password: Secret  # NATS_PASSWORD_ACCOUNTS: this service connects as user "accounts"
    # INTERNAL_TOKEN_<CALLER> of every service allowed to call this one.
    caller_tokens: dict[str, Secret]
    crypto_secret: Secret
    log_level: str
    bind_host: str
    port: int
    metrics_port: int
    shutdown_grace: float
    health_interval: float  # seconds between dependency probes (gRPC health follows them)
    db_pool_size: int
    generate_default_token: bool
    login_max_failures_per_account: int
    login_max_failures_per_ip: int
    login_lock_minutes: int
    login_slowdown_after: int
    login_slowdown_seconds: int
    smtp_timeout: float
    email_resend_seconds: int
    channel_private_addresses: bool  # channels may point at loopback / private addresses
    notify: NotifyConfig


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = Env(environ)
    settings = Settings(
        database_url=env.secret("DATABASE_URL"),
        nats_url=env.str("NATS_URL"),
        nats_password=nats_auth.load_password(env, nats_auth.ACCOUNTS),
        caller_tokens=load_caller_tokens(env),
        crypto_secret=env.secret("CRYPTO_SECRET"),
        log_level=env.str("LOG_LEVEL", "INFO"),
        bind_host=env.str("BIND_HOST", "127.0.0.1"),
        port=env.int("ACCOUNTS_PORT", 50051),
        metrics_port=env.int("ACCOUNTS_METRICS_PORT", 9101),
        shutdown_grace=env.float("ACCOUNTS_SHUTDOWN_GRACE", 10.0),
        health_interval=env.float("HEALTH_PROBE_INTERVAL", 2.0),
        db_pool_size=env.int("ACCOUNTS_DB_POOL_SIZE", 20),
        generate_default_token=env.bool("GENERATE_DEFAULT_TOKEN", False),
        login_max_failures_per_account=env.int("LOGIN_MAX_FAILURES_PER_ACCOUNT", 5),
        login_max_failures_per_ip=env.int("LOGIN_MAX_FAILURES_PER_IP", 20),
        login_lock_minutes=env.int("LOGIN_LOCK_MINUTES", 15),
        login_slowdown_after=env.int("LOGIN_ACCOUNT_SLOWDOWN_AFTER", 10),
        login_slowdown_seconds=env.int("LOGIN_ACCOUNT_SLOWDOWN_SECONDS", 5),
        smtp_timeout=env.float("ACCOUNTS_SMTP_TIMEOUT", 10.0),
        email_resend_seconds=env.int("EMAIL_RESEND_SECONDS", 60),
        channel_private_addresses=env.bool("CHANNEL_PRIVATE_ADDRESSES", False),
        notify=notify_config(env),
    )
    env.check(service="accounts")
    return settings


def notify_config(env: Env) -> NotifyConfig:
    """The notification worker's settings (upstream's NOTIFY_LIMIT_COUNT and
    NOTIFICATION_LIMIT_DURATION_MINUTE with their defaults, and this worker's own)."""
    config = NotifyConfig(
        limit_count=env.int("NOTIFY_LIMIT_COUNT", 2),
        limit_minutes=env.int("NOTIFICATION_LIMIT_DURATION_MINUTE", 10),
        webhook_timeout=env.float("NOTIFY_WEBHOOK_TIMEOUT", 5.0),
        smtp_timeout=env.float("ACCOUNTS_SMTP_TIMEOUT", 10.0),
        max_attempts=env.int("NOTIFY_MAX_ATTEMPTS", 5),
        retry_seconds=env.float("NOTIFY_RETRY_SECONDS", 10.0),
        allow_private=env.bool("WEBHOOK_PRIVATE_ADDRESSES", False),
    )
    if config.limit_count < 0 or config.limit_minutes < 1:
        env.fail(
            "NOTIFY_LIMIT_COUNT must be 0 or more and NOTIFICATION_LIMIT_DURATION_MINUTE 1 or more"
        )
    if config.max_attempts < 1 or config.retry_seconds <= 0 or config.webhook_timeout <= 0:
        env.fail(
            "NOTIFY_MAX_ATTEMPTS, NOTIFY_RETRY_SECONDS and NOTIFY_WEBHOOK_TIMEOUT must be positive"
        )
    return config
