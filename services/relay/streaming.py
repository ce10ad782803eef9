"""SSE relaying: upstream lines are forwarded as they arrive, usage is tracked on the way.

`SSEProcessor` is the pure line logic; `SSEResponse` is the ASGI response that pumps an open
upstream response through it and always closes the upstream (client disconnect included).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from services.relay.adaptors.base import Adaptor, StreamAccumulator

logger = logging.getLogger(__name__)

DONE_FRAME = b"data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class SSEProcessor:
    """Turns upstream bytes into the frames sent to the client.

    Only `data:` lines pass; upstream `[DONE]` is swallowed (one is sent at the end); the
    usage-only chunk is dropped unless the client asked for usage.
    """

    __slots__ = ("_adaptor", "_include_usage", "_pending", "acc", "first_at")

    def __init__(self, adaptor: Adaptor, *, include_usage: bool) -> None:
        self._adaptor = adaptor
        self._include_usage = include_usage
        self._pending = b""
        self.acc = StreamAccumulator()
        self.first_at: float | None = None  # perf_counter of the first data line

    def feed(self, data: bytes) -> bytes:
        if self._pending:
            data = self._pending + data
        lines = data.split(b"\n")
        self._pending = lines.pop()
        if not lines:
            return b""
        frames = [frame for line in lines if (frame := self._line(line))]
        return b"".join(frames)

    def finish(self) -> bytes:
        """Frames for a trailing line without a newline."""
        rest, self._pending = self._pending, b""
        return self._line(rest) if rest else b""

    def _line(self, line: bytes) -> bytes:
        if not line.startswith(b"data:"):
            return b""
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            return b""
        if self.first_at is None:
            self.first_at = time.perf_counter()
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return b"data: " + payload + b"\n\n"
        if isinstance(chunk, dict):
            if self.acc.chunks == 0:
                self.acc.first_chunk_meta = chunk
            usage_only = self._adaptor.accumulate_chunk(chunk, self.acc)
            if usage_only and not self._include_usage:
                return b""
        return b"data: " + payload + b"\n\n"


Finisher = Callable[[SSEProcessor, bool], None]


class SSEResponse(Response):
    """Streams an open upstream response to the client.

    `on_finish(processor, interrupted)` runs exactly once after the stream ends, whatever the
    reason (end of stream, client disconnect, upstream idle timeout or error).
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        upstream: httpx.Response,
        processor: SSEProcessor,
        *,
        headers: Mapping[str, str],
        on_finish: Finisher,
        tail: Callable[[SSEProcessor], bytes] | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({**SSE_HEADERS, **headers})
        self._upstream = upstream
        self._processor = processor
        self._on_finish = on_finish
        self._tail = tail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        state = {"done": False, "disconnected": False}

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            state["disconnected"] = True
            if not state["done"]:
                task.cancel()

        watcher = asyncio.get_running_loop().create_task(watch_disconnect())
        interrupted = True
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            interrupted = not await self._pump(send)
            state["done"] = True
            await self._end(send)
        except asyncio.CancelledError:
            state["done"] = True
            if not state["disconnected"]:
                raise
            task.uncancel()
        finally:
            state["done"] = True
            watcher.cancel()
            await self._upstream.aclose()
            try:
                self._on_finish(self._processor, interrupted)
            except Exception:
                logger.exception("stream finisher failed")

    async def _pump(self, send: Send) -> bool:
        """Relay until the upstream ends; False when it broke off (idle timeout, error)."""
        processor = self._processor
        try:
            async for data in self._upstream.aiter_bytes():
                frames = processor.feed(data)
                if frames:
                    await send({"type": "http.response.body", "body": frames, "more_body": True})
        except httpx.TimeoutException:
            logger.warning("upstream stream idle timeout")
            return False
        except httpx.HTTPError as exc:
            logger.warning("upstream stream broke: %s", type(exc).__name__)
            return False
        rest = processor.finish()
        if rest:
            await send({"type": "http.response.body", "body": rest, "more_body": True})
        return True

    async def _end(self, send: Send) -> None:
        tail = self._tail(self._processor) if self._tail is not None else b""
        await send({"type": "http.response.body", "body": tail + DONE_FRAME, "more_body": False})


def usage_chunk(meta: dict[str, Any], usage: dict[str, Any]) -> bytes:
    """A synthetic final chunk carrying usage, for clients that asked for it."""
    chunk = {
        "id": meta.get("id", ""),
        "object": "chat.completion.chunk",
        "created": meta.get("created", int(time.time())),
        "model": meta.get("model", ""),
        "choices": [],
        "usage": usage,
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"
