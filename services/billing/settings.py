"""Settings of the billing service, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.shared import nats_auth
from services.shared.config import Env, Secret
from services.shared.internal_auth import load_caller_tokens


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: Secret
    crypto_secret: Secret  # decrypts secret options (EpayKey) stored encrypted
    nats_url: str
    nats_password: Secret  # NATS_PASSWORD_BILLING: this service connects as user "billing"
    # INTERNAL_TOKEN_<CALLER> of every service allowed to call this one.
    caller_tokens: dict[str, Secret]
    bind_host: str
    port: int
    metrics_port: int
    log_level: str
    # Seconds between two sweeps of expired holds.
    hold_reaper_interval: float
    # Seconds between two reloads of pricing options written by other replicas.
    pricing_refresh_seconds: float
    default_hold_ttl: int
    settlement_fetch_batch: int
    shutdown_grace: float
    health_interval: float  # seconds between dependency probes (gRPC health follows them)
    db_pool_size: int
    # Monthly log partitions kept created ahead of the current month.
    log_partitions_ahead: int


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = Env(environ)
    settings = Settings(
        database_url=env.secret("DATABASE_URL"),
        crypto_secret=env.secret("CRYPTO_SECRET"),
        nats_url=env.str("NATS_URL"),
        nats_password=nats_auth.load_password(env, nats_auth.BILLING),
        caller_tokens=load_caller_tokens(env),
        bind_host=env.str("BIND_HOST", "127.0.0.1"),
        port=env.int("BILLING_PORT", 50052),
        metrics_port=env.int("BILLING_METRICS_PORT", 9102),
        log_level=env.str("LOG_LEVEL", "INFO"),
        hold_reaper_interval=env.float("HOLD_REAPER_INTERVAL", 30.0),
        pricing_refresh_seconds=env.float("PRICING_REFRESH_SECONDS", 5.0),
        default_hold_ttl=env.int("HOLD_TTL_SECONDS", 600),
        settlement_fetch_batch=env.int("SETTLEMENT_FETCH_BATCH", 16),
        shutdown_grace=env.float("BILLING_SHUTDOWN_GRACE", 10.0),
        health_interval=env.float("HEALTH_PROBE_INTERVAL", 2.0),
        db_pool_size=env.int("BILLING_DB_POOL_SIZE", 20),
        log_partitions_ahead=env.int("LOG_PARTITIONS_AHEAD", 3),
    )
    env.check(service="billing")
    return settings
