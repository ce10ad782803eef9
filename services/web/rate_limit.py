"""Per-IP request rate limits of the console, counted in accounts so that every web replica
shares them (middleware/rate-limit.go: GlobalAPIRateLimit on `/api`, GlobalWebRateLimit on
the console pages and assets, CriticalRateLimit on login, registration, OAuth, email
verification and password reset, and here two-factor codes and passkey sign-in). Refused
requests get 429 in the API's envelope."""

from __future__ import annotations

import logging

import grpc
import orjson
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send
from veloera.accounts.v1 import accounts_pb2

from services.web.client_ip import client_ip
from services.web.deps import Deps
from services.web.settings import RateLimit

logger = logging.getLogger(__name__)

CRITICAL_PATHS = frozenset(
    {
        "/api/user/login",
        "/api/user/login/2fa",
        "/api/user/register",
        "/api/user/reset",
        "/api/verification",
        "/api/reset_password",
    }
)
# Every place a two-factor code or a passkey assertion is checked counts like a login.
CRITICAL_PREFIXES = ("/api/oauth/", "/api/user/2fa/", "/api/user/passkey/login")
# Probes and scrapes are not console traffic.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def limits_for(path: str, deps: Deps) -> list[tuple[str, RateLimit]]:
    """The (scope, limit) pairs a request to `path` counts against, switched-off ones left out."""
    settings = deps.settings
    if path in UNLIMITED_PATHS:
        return []
    if path.startswith("/api/") or path == "/api":
        chosen = [("api", settings.api_rate_limit)]
        if path in CRITICAL_PATHS or path.startswith(CRITICAL_PREFIXES):
            chosen.append(("critical", settings.critical_rate_limit))
    else:
        chosen = [("web", settings.web_rate_limit)]
    return [(scope, limit) for scope, limit in chosen if limit.enabled]


async def _retry_after(deps: Deps, scope: str, limit: RateLimit, subject: str) -> int:
    """0 when the hit is admitted, else the seconds to wait. Accounts being unreachable
    admits the request: the limits protect the console, they must not take it down."""
    try:
        reply = await deps.accounts.HitRateLimit(
            accounts_pb2.HitRateLimitRequest(
                scope=scope, subject=subject, limit=limit.limit,
                window_ms=limit.window_seconds * 1000,
            ),
            timeout=deps.timeout,
        )  # fmt: skip
    except grpc.aio.AioRpcError as exc:
        logger.warning("rate limit check failed (%s); request admitted", exc.code().name)
        return 0
    return 0 if reply.allowed else max(-(-reply.retry_after_ms // 1000), 1)


async def _send_429(send: Send, retry_after: int) -> None:
    message = f"too many requests, please retry in {retry_after} seconds"
    body = orjson.dumps({"success": False, "message": message, "data": None})
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deps: Deps | None = getattr(scope["app"].state, "deps", None)
        chosen = limits_for(scope["path"], deps) if deps is not None else []
        if deps is not None and chosen:
            subject = await client_ip(HTTPConnection(scope), deps)
            for name, limit in chosen:
                retry_after = await _retry_after(deps, name, limit, subject)
                if retry_after:
                    await _send_429(send, retry_after)
                    return
        await self.app(scope, receive, send)
