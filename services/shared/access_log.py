"""One structured access-log line per HTTP request (relay and web), as an ASGI middleware.

The line (logger `veloera.access`, through the JSON formatter of services.shared.logging) has
method, path (never the query string: it may carry a key), status, latency, the request id,
and what the handler put in `request.state.access_fields` (the relay: key id, user id, model,
channel; web: user id). Answers of 400 and above also carry their reason: the `message` of
the JSON error body (the relay's OpenAI shape or the console's envelope), which never holds
keys (upstream text is scrubbed first) or prompts. 5xx are logged at WARNING, the rest at
INFO; probes (/healthz, /readyz, /metrics) are logged only when they fail.

Costs one closure call per ASGI message and one log call per request; the body is read only
for error answers, and only its first chunk.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("veloera.access")

QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
STATE_KEY = "access_fields"
_REASON_CHARS = 300
_REQUEST_ID_HEADERS = (b"x-veloera-request-id", b"x-oneapi-request-id", b"x-request-id")


def error_reason(body: bytes) -> str:
    """The human reason of an error body: `error.message` (OpenAI shape), `message` (the
    console's envelope), else the start of the text."""
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:_REASON_CHARS].decode("utf-8", "replace")
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            code = error.get("code")
            message: str = error["message"]
            return f"{code}: {message}"[:_REASON_CHARS] if code else message[:_REASON_CHARS]
        if isinstance(parsed.get("message"), str):
            return str(parsed["message"])[:_REASON_CHARS]
    return body[:_REASON_CHARS].decode("utf-8", "replace")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        request_id = ""
        reason = ""

        async def send_wrapper(message: Message) -> None:
            nonlocal status, request_id, reason
            kind = message["type"]
            if kind == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", ()):
                    if name.lower() in _REQUEST_ID_HEADERS:
                        request_id = value.decode("latin-1")
            elif kind == "http.response.body" and status >= 400 and not reason:
                reason = error_reason(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            status, reason = status or 500, reason or f"unhandled {type(exc).__name__}"
            raise
        finally:
            self._log(scope, status or 500, started, request_id, reason)

    @staticmethod
    def _log(scope: Scope, status: int, started: float, request_id: str, reason: str) -> None:
        path: str = scope["path"]
        if path in QUIET_PATHS and status < 400:
            return
        fields: dict[str, Any] = {
            "method": scope["method"],
            "path": path,
            "status": status,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        state = scope.get("state")
        extra = state.get(STATE_KEY) if isinstance(state, dict) else None
        if extra:
            fields.update(extra)
        if request_id and "request_id" not in fields:
            fields["request_id"] = request_id
        if status >= 400:
            fields["reason"] = reason
        level = logging.WARNING if status >= 500 else logging.INFO
        logger.log(level, "request", extra=fields)
