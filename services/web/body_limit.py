"""Request body caps per route: an anonymous 200 MB login must not take the web process to a
gigabyte. Answered as 413 in the API's envelope before (or while) the body is read."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

KIB = 1024
MIB = 1024 * KIB
# Anonymous endpoints (login, registration, setup, password reset, OAuth): a few fields each.
AUTH_LIMIT = 16 * KIB
# Everything else an authenticated console sends: a channel, a token, a message.
DEFAULT_LIMIT = 1 * MIB
# Where admins paste large values: options (a value may hold up to 1,000,000 characters),
# channels (many keys, long model lists) and the global model mapping.
LARGE_LIMIT = 8 * MIB
# Beyond this a refused body is not read to its end: the connection is simply closed.
DRAIN_LIMIT = 64 * MIB

_AUTH_PATHS = frozenset(
    {
        "/api/user/login",
        "/api/user/logout",
        "/api/user/register",
        "/api/user/reset",
        "/api/setup",
        "/api/verification",
        "/api/reset_password",
    }
)
_AUTH_PREFIXES = ("/api/oauth/",)
_LARGE_PREFIXES = ("/api/option/", "/api/channel/", "/api/model_mapping/")


def body_limit(path: str) -> int:
    """The largest body (in bytes) a request to `path` may carry."""
    if path in _AUTH_PATHS or path.startswith(_AUTH_PREFIXES):
        return AUTH_LIMIT
    if path.startswith(_LARGE_PREFIXES):
        return LARGE_LIMIT
    return DEFAULT_LIMIT


class BodyTooLarge(Exception):
    """Raised from `receive` when a body without a (truthful) Content-Length grows too big."""


def _too_large_body(limit: int) -> bytes:
    message = f"request body too large: at most {limit} bytes are accepted here"
    return orjson.dumps({"success": False, "message": message, "data": None})


async def _send_413(send: Send, limit: int) -> None:
    body = _too_large_body(limit)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _discard_body(receive: Receive) -> None:
    """Read and drop what is left of the body (up to DRAIN_LIMIT) so the client, which sends
    the whole body before it reads an answer, sees the 413 rather than a reset connection."""
    drained = 0
    while drained <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimitMiddleware:
    """Refuses a declared Content-Length above the route's cap at once, and counts the bytes
    of bodies sent without one (chunked), stopping the request when they pass the cap."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _discard_body(receive)
            await _send_413(send, limit)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _discard_body(receive)
                await _send_413(send, limit)
