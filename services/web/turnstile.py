"""Cloudflare Turnstile, checked server-side on the routes upstream protects
(middleware/turnstile-check.go): registration, login, the verification email, the password
reset email, redeeming a code and the daily check-in. When TurnstileCheckEnabled is on, the
widget's token comes as `?turnstile=` and is verified with Cloudflare's siteverify; a passed
check is remembered in the flow cookie, so a browser passes once per session as upstream's
does. Siteverify unreachable, slow or answering garbage fails closed."""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
import httpx
import orjson
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.web import flow
from services.web.client_ip import client_ip
from services.web.deps import Deps
from services.web.options_cache import options_cache, secret_options_cache

logger = logging.getLogger(__name__)

PROTECTED = frozenset(
    {
        ("POST", "/api/user/register"),
        ("POST", "/api/user/login"),
        ("GET", "/api/verification"),
        ("GET", "/api/reset_password"),
        ("POST", "/api/user/topup"),
        ("POST", "/api/user/check_in"),
    }
)
MISSING = "Turnstile token is empty, please complete the verification"
FAILED = "Turnstile verification failed, please refresh and retry"
UNAVAILABLE = "cannot read the Turnstile settings, please retry"


async def verify(deps: Deps, *, secret: str, token: str, remote_ip: str) -> bool:
    """Whether siteverify accepts `token`; False on any transport or protocol failure."""
    form = {"secret": secret, "response": token, "remoteip": remote_ip}
    try:
        async with httpx.AsyncClient(timeout=deps.settings.turnstile_timeout) as client:
            reply = await client.post(deps.settings.turnstile_verify_url, data=form)
        body: Any = reply.json()
    except (httpx.HTTPError, ValueError) as exc:
        logger.warning("turnstile siteverify failed: %s", type(exc).__name__)
        return False
    return isinstance(body, dict) and body.get("success") is True


async def _refuse(send: Send, message: str) -> None:
    body = orjson.dumps({"success": False, "message": message, "data": None})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _pass_cookie(connection: HTTPConnection, deps: Deps, state: dict[str, Any]) -> bytes:
    """The Set-Cookie header value that records a passed check in the flow state."""
    carrier = Response()
    data = {**state, "turnstile_until": int(time.time()) + flow.TURNSTILE_PASS_SECONDS}
    flow.set_cookie(carrier, connection, deps, data)
    return dict(carrier.raw_headers)[b"set-cookie"]


async def _check(connection: HTTPConnection, deps: Deps) -> tuple[str, bytes]:
    """(refusal message, "") to refuse; ("", Set-Cookie value or b"") to go on, recording
    a check passed just now."""
    try:
        if (await options_cache(connection).get(deps)).get("TurnstileCheckEnabled") != "true":
            return "", b""
        secret = (await secret_options_cache(connection).get(deps)).get("TurnstileSecretKey", "")
    except grpc.aio.AioRpcError as exc:
        logger.warning("turnstile: cannot read options (%s)", exc.code().name)
        return UNAVAILABLE, b""
    state = flow.read(connection, deps)
    if flow.turnstile_passed(state):
        return "", b""
    token = connection.query_params.get("turnstile", "").strip()
    if not token:
        return MISSING, b""
    remote_ip = await client_ip(connection, deps)
    if not secret or not await verify(deps, secret=secret, token=token, remote_ip=remote_ip):
        return FAILED, b""
    return "", _pass_cookie(connection, deps, state)


class TurnstileMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        deps: Deps | None = getattr(scope["app"].state, "deps", None)
        if (
            scope["type"] != "http"
            or deps is None
            or (scope["method"], scope["path"].rstrip("/") or "/") not in PROTECTED
        ):
            await self.app(scope, receive, send)
            return
        refusal, cookie = await _check(HTTPConnection(scope), deps)
        if refusal:
            await _refuse(send, refusal)
            return
        if not cookie:
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie)]
            await send(message)

        await self.app(scope, receive, send_with_cookie)
