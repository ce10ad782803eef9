"""Web console settings, read once from the environment."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.shared import nats_auth
from services.shared.client_ip import TrustedProxies, load_trusted_proxies
from services.shared.config import Env, Secret
from services.shared.internal_auth import WEB, Credential, load_credential

TURNSTILE_VERIFY_URL = "https://challenges.cloudflare.com/turnstile/v0/siteverify"
GITHUB_AUTHORIZE_URL = "https://github.com/login/oauth/authorize"
GITHUB_TOKEN_URL = "https://github.com/login/oauth/access_token"
GITHUB_USER_URL = "https://api.github.com/user"
LINUXDO_CONNECT_URL = "https://connect.linux.do"
IDCFLARE_CONNECT_URL = "https://connect.idcflare.com"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `limit` requests per client IP within any `window_seconds` (sliding)."""

    enabled: bool
    limit: int
    window_seconds: int


@dataclass(frozen=True, slots=True)
class Settings:
    port: int
    bind_host: str
    accounts_addr: str
    billing_addr: str
    credential: Credential  # presented on every call to accounts and billing
    session_secret: Secret
    log_level: str
    relay_public_url: str
    rpc_timeout: float
    session_cookie_secure: bool
    trusted_proxies: TrustedProxies = ()
    # middleware/rate-limit.go: GlobalAPIRateLimit, GlobalWebRateLimit, CriticalRateLimit.
    api_rate_limit: RateLimit = RateLimit(True, 180, 180)
    web_rate_limit: RateLimit = RateLimit(True, 60, 180)
    critical_rate_limit: RateLimit = RateLimit(True, 20, 20 * 60)
    # Cloudflare Turnstile's siteverify (middleware/turnstile-check.go); tests point it at a fake.
    turnstile_verify_url: str = TURNSTILE_VERIFY_URL
    turnstile_timeout: float = 5.0
    # OAuth providers: token exchange, userinfo and OIDC discovery calls are bounded by this.
    oauth_timeout: float = 10.0
    github_token_url: str = GITHUB_TOKEN_URL
    github_user_url: str = GITHUB_USER_URL
    # LinuxDO and IDC Flare Connect (Discourse OAuth 2): /oauth2/token and /api/user below these.
    linuxdo_connect_url: str = LINUXDO_CONNECT_URL
    idcflare_connect_url: str = IDCFLARE_CONNECT_URL
    # Passkeys (WebAuthn): the console's origin as browsers see it, and the relying party id
    # (its host name). Empty: the origin the request came to.
    webauthn_origin: str = ""
    webauthn_rp_id: str = ""
    # Channel tests, balance queries and model lists call upstreams from here (admin actions):
    # each call is bounded by CHANNEL_PROBE_TIMEOUT; private upstream addresses only when the
    # operator allows them, as in the relay.
    channel_probe_timeout: float = 30.0
    polling_interval: float = 0.0  # POLLING_INTERVAL: pause between channels in test-all
    # NATS for the task and drawing logs (TASKS_FETCH); "" leaves them, and /api/status's
    # enable_drawing / enable_task, off.
    nats_url: str = ""
    nats_password: Secret = field(default_factory=lambda: Secret(""))  # NATS_PASSWORD_WEB
    tasks_fetch_timeout: float = 5.0


def _rate_limit(env: Env, prefix: str, limit: int, seconds: int) -> RateLimit:
    return RateLimit(
        enabled=env.bool(f"{prefix}_ENABLE", True),
        limit=max(env.int(prefix, limit), 1),
        window_seconds=max(env.int(f"{prefix}_DURATION", seconds), 1),
    )


def _pause(env: Env) -> float:
    """POLLING_INTERVAL: seconds, 0 or more."""
    value = env.float("POLLING_INTERVAL", 0.0)
    if not math.isfinite(value) or value < 0:
        env.fail("POLLING_INTERVAL must be a number of seconds, 0 or more")
        return 0.0
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = Env(environ)
    settings = Settings(
        port=env.int("WEB_PORT", 3001),
        bind_host=env.str("BIND_HOST", "127.0.0.1"),
        accounts_addr=env.str("ACCOUNTS_ADDR", "127.0.0.1:50051"),
        billing_addr=env.str("BILLING_ADDR", "127.0.0.1:50052"),
        credential=load_credential(env, WEB),
        session_secret=env.secret("SESSION_SECRET"),
        log_level=env.str("LOG_LEVEL", "INFO"),
        # The default follows RELAY_PORT, so the console never shows a port nobody listens on.
        relay_public_url=env.str(
            "RELAY_PUBLIC_URL", f"http://127.0.0.1:{env.int('RELAY_PORT', 3000)}"
        ).rstrip("/"),
        rpc_timeout=env.float("WEB_RPC_TIMEOUT", 5.0),
        session_cookie_secure=env.bool("SESSION_COOKIE_SECURE", False),
        trusted_proxies=load_trusted_proxies(env),
        api_rate_limit=_rate_limit(env, "GLOBAL_API_RATE_LIMIT", 180, 180),
        web_rate_limit=_rate_limit(env, "GLOBAL_WEB_RATE_LIMIT", 60, 180),
        critical_rate_limit=_rate_limit(env, "CRITICAL_RATE_LIMIT", 20, 20 * 60),
        turnstile_verify_url=env.str("TURNSTILE_VERIFY_URL", TURNSTILE_VERIFY_URL),
        turnstile_timeout=max(env.float("TURNSTILE_TIMEOUT", 5.0), 0.1),
        oauth_timeout=max(env.float("OAUTH_TIMEOUT", 10.0), 0.1),
        github_token_url=env.str("GITHUB_OAUTH_TOKEN_URL", GITHUB_TOKEN_URL),
        github_user_url=env.str("GITHUB_USER_URL", GITHUB_USER_URL),
        linuxdo_connect_url=env.str("LINUXDO_CONNECT_URL", LINUXDO_CONNECT_URL).rstrip("/"),
        idcflare_connect_url=env.str("IDCFLARE_CONNECT_URL", IDCFLARE_CONNECT_URL).rstrip("/"),
        webauthn_origin=env.str("WEBAUTHN_ORIGIN", "").rstrip("/"),
        webauthn_rp_id=env.str("WEBAUTHN_RP_ID", ""),
        channel_probe_timeout=max(env.float("CHANNEL_PROBE_TIMEOUT", 30.0), 0.1),
        polling_interval=_pause(env),
        nats_url=env.str("NATS_URL", ""),
        nats_password=nats_auth.load_password(env, nats_auth.WEB),
        tasks_fetch_timeout=max(env.float("WEB_TASKS_FETCH_TIMEOUT", 5.0), 0.1),
    )
    env.check(service="web")
    return settings
