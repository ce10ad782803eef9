"""Relay settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.relay.billing.leases import LeaseConfig, lease_config
from services.shared import nats_auth
from services.shared.client_ip import TrustedProxies, load_trusted_proxies
from services.shared.config import Env, Secret
from services.shared.internal_auth import RELAY, Credential, load_credential

COHERE_SAFETY_MODES = frozenset({"NONE", "CONTEXTUAL", "STRICT"})


@dataclass(frozen=True, slots=True)
class Settings:
    bind_host: str
    port: int
    accounts_addr: str
    billing_addr: str
    credential: Credential  # presented on every call to accounts and billing
    nats_url: str
    nats_password: Secret  # NATS_PASSWORD_RELAY: this service connects as user "relay"
    log_level: str
    streaming_timeout: float  # idle seconds between stream chunks
    force_stream_option: bool
    relay_timeout: float  # total seconds of a non-stream upstream call
    settle_timeout: float
    max_body_bytes: int
    auth_cache_seconds: float
    auth_cache_size: int
    snapshot_refresh_seconds: float
    startup_timeout: float
    shutdown_grace_seconds: float
    retry_count: int  # extra attempts on another channel after a retryable failure
    azure_api_version: str
    cohere_safety: str  # COHERE_SAFETY_SETTING: NONE, CONTEXTUAL or STRICT
    get_media_token: bool
    get_media_token_not_stream: bool
    max_file_download_bytes: int
    pseudo_stream_wait_seconds: float
    channel_private_addresses: bool  # upstreams at loopback / private addresses may be used
    metrics_token: str  # /metrics answers only with `Authorization: Bearer <token>`
    access_log: bool  # one structured line per request (costs ~0.1-0.2 ms of CPU per request)
    leases: LeaseConfig | None  # quota leases from billing; None: one Reserve per request
    tasks_fetch_timeout: float  # seconds the tasks service has to answer a task fetch
    task_submit_timeout: float  # seconds a Midjourney or Suno upstream has to answer a submit
    channel_probe_timeout: float = 30.0  # seconds each upstream call of a channel probe may take
    realtime_idle_seconds: float = 300.0  # a Realtime session silent both ways this long closes
    trusted_proxies: TrustedProxies = ()  # peers whose forwarding headers name the client


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = Env(environ)
    settings = Settings(
        bind_host=env.str("BIND_HOST", "127.0.0.1"),
        port=env.int("RELAY_PORT", 3000),
        accounts_addr=env.str("ACCOUNTS_ADDR", "127.0.0.1:50051"),
        billing_addr=env.str("BILLING_ADDR", "127.0.0.1:50052"),
        credential=load_credential(env, RELAY),
        nats_url=env.str("NATS_URL"),
        nats_password=nats_auth.load_password(env, nats_auth.RELAY),
        log_level=env.str("LOG_LEVEL", "INFO"),
        streaming_timeout=env.float("STREAMING_TIMEOUT", 60.0),
        force_stream_option=env.bool("FORCE_STREAM_OPTION", True),
        relay_timeout=env.float("RELAY_TIMEOUT", 600.0),
        realtime_idle_seconds=env.float("RELAY_REALTIME_IDLE_SECONDS", 300.0),
        settle_timeout=env.float("SETTLE_TIMEOUT", 5.0),
        max_body_bytes=env.int("RELAY_MAX_BODY_MB", 32) * 1024 * 1024,
        auth_cache_seconds=env.float("RELAY_AUTH_CACHE_SECONDS", 5.0),
        auth_cache_size=env.int("RELAY_AUTH_CACHE_SIZE", 100_000),
        snapshot_refresh_seconds=env.float("RELAY_SNAPSHOT_REFRESH_SECONDS", 5.0),
        startup_timeout=env.float("RELAY_STARTUP_TIMEOUT", 60.0),
        shutdown_grace_seconds=env.float("RELAY_SHUTDOWN_GRACE_SECONDS", 30.0),
        retry_count=env.int("RELAY_RETRY_COUNT", 1),
        azure_api_version=env.str("AZURE_DEFAULT_API_VERSION", "2024-12-01-preview"),
        cohere_safety=env.str("COHERE_SAFETY_SETTING", "NONE").strip().upper(),
        get_media_token=env.bool("GET_MEDIA_TOKEN", True),
        get_media_token_not_stream=env.bool("GET_MEDIA_TOKEN_NOT_STREAM", True),
        max_file_download_bytes=env.int("MAX_FILE_DOWNLOAD_MB", 20) * 1024 * 1024,
        pseudo_stream_wait_seconds=env.float("RELAY_PSEUDO_STREAM_WAIT_SECONDS", 5.0),
        channel_private_addresses=env.bool("CHANNEL_PRIVATE_ADDRESSES", False),
        metrics_token=env.str("RELAY_METRICS_TOKEN", ""),
        access_log=env.bool("RELAY_ACCESS_LOG", True),
        leases=lease_config(env),
        tasks_fetch_timeout=env.float("RELAY_TASKS_FETCH_TIMEOUT", 5.0),
        task_submit_timeout=env.float("RELAY_TASK_SUBMIT_TIMEOUT", 60.0),
        channel_probe_timeout=max(env.float("CHANNEL_PROBE_TIMEOUT", 30.0), 0.1),
        trusted_proxies=load_trusted_proxies(env),
    )
    if settings.cohere_safety not in COHERE_SAFETY_MODES:
        env.fail("COHERE_SAFETY_SETTING must be NONE, CONTEXTUAL or STRICT")
    env.check(service="relay")
    return settings
