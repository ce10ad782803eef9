"""Providers whose chat API is a websocket (iFlytek Spark): the request goes out as one text
frame and the provider's frames come back as newline-delimited text, through the same
interface as an HTTP answer (`read`, `content.iter_any`, `release`, `headers`), so the
attempt's code and the adaptor's converters treat both alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import MappingProxyType

import aiohttp

from services.relay.adaptors.base import UpstreamRequest
from services.relay.upstream.http import UpstreamFailure, failure_of

CLOSE_SECONDS = 5.0
_closing: set[asyncio.Future[bool]] = set()  # closes in flight (a task needs a reference)


class _Frames:
    __slots__ = ("_answer",)

    def __init__(self, answer: WebSocketAnswer) -> None:
        self._answer = answer

    def iter_any(self) -> AsyncIterator[bytes]:
        return self._answer.frames()


class WebSocketAnswer:
    """An open provider websocket after the request was sent."""

    headers = MappingProxyType({"content-type": "application/x-ndjson"})

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, receive_timeout: float) -> None:
        self._ws = ws
        self._timeout = receive_timeout
        self.content = _Frames(self)

    async def frames(self) -> AsyncIterator[bytes]:
        """Each text frame and a newline, until the provider closes the socket."""
        while True:
            message = await self._ws.receive(timeout=self._timeout)
            if message.type == aiohttp.WSMsgType.TEXT:
                yield message.data.encode() + b"\n"
            elif message.type == aiohttp.WSMsgType.BINARY:
                yield message.data + b"\n"
            elif message.type == aiohttp.WSMsgType.ERROR:
                raise aiohttp.ClientConnectionError("the provider's websocket failed")
            else:  # CLOSE, CLOSING, CLOSED: the answer is complete
                return

    async def read(self) -> bytes:
        return b"".join([frame async for frame in self.frames()])

    def release(self) -> None:
        if not self._ws.closed:
            # Closing waits for the provider's close frame: not on the caller's path.
            task = asyncio.ensure_future(self._ws.close())
            _closing.add(task)
            task.add_done_callback(_closing.discard)


async def open_websocket(
    session: aiohttp.ClientSession,
    request: UpstreamRequest,
    receive_timeout: float,
    proxy: str = "",
) -> WebSocketAnswer:
    """Connect, send the request's body as one text frame; a refused handshake fails the
    attempt with the provider's status."""
    try:
        ws = await session.ws_connect(
            request.url,
            headers=request.headers,
            proxy=proxy or None,
            timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_SECONDS),
            heartbeat=30.0,
        )
    except aiohttp.WSServerHandshakeError as exc:
        raise UpstreamFailure(
            "status", exc.status, f"the provider refused the websocket ({exc.message})"
        ) from None
    except (TimeoutError, ValueError, aiohttp.ClientError, OSError) as exc:
        raise failure_of(exc) from None
    try:
        await ws.send_str(request.body.decode())
    except (aiohttp.ClientError, OSError) as exc:
        await ws.close()
        raise failure_of(exc) from None
    return WebSocketAnswer(ws, receive_timeout)
