"""Web console settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.shared.config import Env, Secret


@dataclass(frozen=True, slots=True)
class Settings:
    port: int
    bind_host: str
    accounts_addr: str
    billing_addr: str
    session_secret: Secret
    log_level: str
    relay_public_url: str
    rpc_timeout: float
    session_cookie_secure: bool


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = Env(environ)
    settings = Settings(
        port=env.int("WEB_PORT", 3001),
        bind_host=env.str("BIND_HOST", "127.0.0.1"),
        accounts_addr=env.str("ACCOUNTS_ADDR", "127.0.0.1:50051"),
        billing_addr=env.str("BILLING_ADDR", "127.0.0.1:50052"),
        session_secret=env.secret("SESSION_SECRET"),
        log_level=env.str("LOG_LEVEL", "INFO"),
        # The default follows RELAY_PORT, so the console never shows a port nobody listens on.
        relay_public_url=env.str(
            "RELAY_PUBLIC_URL", f"http://127.0.0.1:{env.int('RELAY_PORT', 3000)}"
        ).rstrip("/"),
        rpc_timeout=env.float("WEB_RPC_TIMEOUT", 5.0),
        session_cookie_secure=env.bool("SESSION_COOKIE_SECURE", False),
    )
    env.check(service="web")
    return settings
