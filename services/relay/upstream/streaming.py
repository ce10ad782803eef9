"""SSE relaying: upstream lines are forwarded as they arrive, usage is tracked on the way.

`SSEProcessor` is the pure line logic; `SSEResponse` is the ASGI response that pumps an open
upstream response through it and always closes the upstream (client disconnect included),
with optional keep-alive pings (upstream `relay/helper/stream_scanner.go`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from services.relay.adaptors.base import Adaptor, StreamAccumulator
from services.relay.ingress import StreamEgress
from services.relay.metering.output_cap import OutputCap
from services.relay.metrics import STREAM_ENDS
from services.relay.upstream.http import UPSTREAM_ERRORS

logger = logging.getLogger(__name__)

DONE_FRAME = b"data: [DONE]\n\n"
PING_FRAME = b": PING\n\n"
WAIT_FRAME = b": WAITING FOR UPSTREAM\n\n"
SSE_TYPE = "text/event-stream"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_CHUNK_KEYS = ("id", "object", "created", "model", "system_fingerprint", "choices", "usage")
_CHOICE_KEYS = ("index", "delta", "finish_reason", "logprobs")
_DELTA_KEYS = ("role", "content", "reasoning_content", "tool_calls", "refusal")
THINK_OPEN = "<think>\n"
THINK_CLOSE = "\n</think>\n"


def strict_chunk(chunk: dict[str, Any]) -> dict[str, Any]:
    """`force_format`: only OpenAI's chunk fields, in OpenAI's layout."""
    out = {k: chunk[k] for k in _CHUNK_KEYS if k in chunk}
    out.setdefault("object", "chat.completion.chunk")
    choices = chunk.get("choices")
    if isinstance(choices, list):
        clean = []
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            item = {k: choice[k] for k in _CHOICE_KEYS if k in choice}
            delta = choice.get("delta")
            if isinstance(delta, dict):
                item["delta"] = {k: delta[k] for k in _DELTA_KEYS if k in delta}
            clean.append(item)
        out["choices"] = clean
    return out


class ThinkingToContent:
    """`thinking_to_content`: reasoning deltas become content wrapped in <think>…</think>."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = False

    def apply(self, chunk: dict[str, Any]) -> bool:
        """Rewrite the chunk in place; True when it changed."""
        changed = False
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            reasoning = delta.pop("reasoning_content", None) or delta.pop("reasoning", None)
            content = delta.get("content")
            text = ""
            if isinstance(reasoning, str) and reasoning:
                text = reasoning if self.open else THINK_OPEN + reasoning
                self.open = True
                changed = True
            if isinstance(content, str) and content and self.open and not text:
                content = THINK_CLOSE + content
                self.open = False
                changed = True
            if text:
                delta["content"] = text + (content or "")
            elif changed:
                delta["content"] = content
        return changed


class SSEProcessor:
    """Turns upstream bytes into the frames sent to the client.

    Only `data:` lines pass (and `event:` lines with `keep_events`, which Responses streams
    need); upstream `[DONE]` is swallowed (one is sent at the end); the usage-only chunk is
    dropped unless the client asked for usage. With a `cap`, the output stops where it reaches
    the cap: `cut` turns true and every later line is dropped. With an `egress` (a client
    format other than OpenAI's), each chunk becomes that format's frames instead.
    """

    __slots__ = (
        "_adaptor",
        "_cap",
        "_egress",
        "_error_frame",
        "_force_format",
        "_include_usage",
        "_keep_events",
        "_pending",
        "_scrub",
        "_thinking",
        "acc",
        "cut",
        "first_at",
    )

    def __init__(
        self,
        adaptor: Adaptor,
        *,
        include_usage: bool,
        force_format: bool = False,
        thinking_to_content: bool = False,
        keep_events: bool = False,
        cap: OutputCap | None = None,
        egress: StreamEgress | None = None,
        scrub: Callable[[str], str] = str,
        error_frame: Callable[[str], bytes] | None = None,
    ) -> None:
        self._adaptor = adaptor
        self._scrub = scrub  # upstream error text: the channel's key and address removed
        self._error_frame = error_frame or openai_error_frame  # in the client's format
        self._cap = cap
        self._egress = egress
        self.cut = False
        self._keep_events = keep_events
        self._include_usage = include_usage
        self._force_format = force_format
        self._thinking = ThinkingToContent() if thinking_to_content else None
        self._pending = b""
        self.acc = StreamAccumulator()
        self.first_at: float | None = None  # perf_counter of the first data line

    def feed(self, data: bytes) -> bytes:
        if self.cut:
            return b""
        if self._pending:
            data = self._pending + data
        lines = data.split(b"\n")
        self._pending = lines.pop()
        if not lines:
            return b""
        if self._cap is not None:
            return self._capped(lines, self._cap)
        frames = [frame for line in lines if (frame := self._line(line))]
        return b"".join(frames)

    def _capped(self, lines: list[bytes], cap: OutputCap) -> bytes:
        frames: list[bytes] = []
        for line in lines:
            frame = self._line(line)
            if frame:
                frames.append(frame)
            if cap.reached(self.acc):
                self.cut = True
                self._pending = b""
                break
        return b"".join(frames)

    def finish(self) -> bytes:
        """Frames for a trailing line without a newline."""
        rest, self._pending = self._pending, b""
        return self._line(rest) if rest and not self.cut else b""

    def _line(self, line: bytes) -> bytes:
        if not line.startswith(b"data:"):
            if self._keep_events and line.startswith(b"event:"):
                return b"event: " + line[6:].strip() + b"\n"
            return b""
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            return b""
        if self.first_at is None:
            self.first_at = time.perf_counter()
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return b"data: " + payload + b"\n\n" if self._egress is None else b""
        if isinstance(chunk, dict):
            if "error" in chunk:
                return self._upstream_error(chunk)
            if self.acc.chunks == 0:
                self.acc.first_chunk_meta = chunk
            usage_only = self._adaptor.accumulate_chunk(chunk, self.acc)
            if usage_only and not self._include_usage:
                return b""
            if self._egress is not None:
                return self._egress.chunk(chunk)
            rewrite = False
            if self._thinking is not None:
                rewrite = self._thinking.apply(chunk)
            if self._force_format:
                chunk, rewrite = strict_chunk(chunk), True
            if rewrite:
                payload = orjson.dumps(chunk)
        return b"data: " + payload + b"\n\n"

    def _upstream_error(self, chunk: dict[str, Any]) -> bytes:
        """An error the upstream sent inside its stream: passed on in the client's format,
        its text scrubbed (upstream errors can quote the key or the upstream's address)."""
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        return self._error_frame(
            self._scrub(message if isinstance(message, str) else "upstream error")
        )


Finisher = Callable[[SSEProcessor, bool], None]


def openai_error_frame(message: str) -> bytes:
    """An error event in OpenAI's stream shape (the SDKs raise on a chunk with `error`)."""
    error = {"message": message, "type": "upstream_error", "param": None, "code": "stream_broken"}
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"


class _Channel:
    """The client side of a stream: one `send` at a time, and the disconnect watch."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._lock = asyncio.Lock()
        self._closed = False
        self.last_sent = time.monotonic()

    async def body(self, data: bytes, more: bool = True) -> None:
        async with self._lock:
            if self._closed:
                return
            self._closed = not more
            await self._send({"type": "http.response.body", "body": data, "more_body": more})
            self.last_sent = time.monotonic()


async def _pinger(channel: _Channel, interval: float, frame: bytes) -> None:
    while True:
        await asyncio.sleep(max(interval - (time.monotonic() - channel.last_sent), 0.05))
        if time.monotonic() - channel.last_sent >= interval:
            await channel.body(frame)


class StreamBase(Response):
    """An SSE response that cancels its work when the client goes away."""

    media_type = SSE_TYPE

    def __init__(
        self,
        headers: Mapping[str, str],
        ping_seconds: float | None,
        media_type: str = SSE_TYPE,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.media_type = media_type  # JSON for Gemini's array streams
        self.init_headers({**SSE_HEADERS, **headers})
        self._ping_seconds = ping_seconds

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

        loop = asyncio.get_running_loop()
        watcher = loop.create_task(watch_disconnect())
        channel = _Channel(send)
        pinger: asyncio.Task[None] | None = None
        interrupted = True
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if self._ping_seconds:
                pinger = loop.create_task(_pinger(channel, self._ping_seconds, self.ping_frame))
            interrupted = not await self.run(channel)
            state["done"] = True
        except asyncio.CancelledError:
            state["done"] = True
            if not state["disconnected"]:
                raise
            task.uncancel()
        finally:
            state["done"] = True
            watcher.cancel()
            if pinger is not None:
                pinger.cancel()
            await self.cleanup(interrupted, state["disconnected"])

    ping_frame = PING_FRAME

    async def run(self, channel: _Channel) -> bool:
        """Send the body; True when it was complete."""
        raise NotImplementedError

    async def cleanup(self, interrupted: bool, disconnected: bool) -> None:
        """Runs exactly once, whatever happened."""


class SSEResponse(StreamBase):
    """Streams an open upstream response to the client.

    `on_finish(processor, interrupted)` runs exactly once after the stream ends, whatever the
    reason (end of stream, client disconnect, upstream idle timeout or error).
    """

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        close_upstream: Callable[[], None],
        processor: SSEProcessor,
        *,
        headers: Mapping[str, str],
        on_finish: Finisher,
        tail: Callable[[SSEProcessor], bytes] | None = None,
        ping_seconds: float | None = None,
        initial: bytes = b"",
        done_frame: bytes = DONE_FRAME,
        ping_frame: bytes = PING_FRAME,
        error_frame: Callable[[str], bytes] | None = None,
        media_type: str = SSE_TYPE,
    ) -> None:
        super().__init__(headers, ping_seconds, media_type)
        self._done_frame = done_frame
        self._error_frame = error_frame or openai_error_frame
        self.ping_frame = ping_frame
        self._chunks = chunks  # the upstream body as it arrives
        self._close_upstream = close_upstream  # frees the upstream connection
        self._processor = processor
        self._on_finish = on_finish
        self._tail = tail
        self._initial = initial  # frames already read (to make sure the stream is not empty)

    async def run(self, channel: _Channel) -> bool:
        broken = await self._pump(channel)
        # A stream the upstream broke off ends with an error event, so the client's SDK
        # raises instead of taking a truncated answer for a whole one.
        error = self._error_frame(f"the upstream stream broke off ({broken})") if broken else b""
        tail = self._tail(self._processor) if self._tail is not None else b""
        await channel.body(error + tail + self._done_frame, more=False)
        return not broken

    async def cleanup(self, interrupted: bool, disconnected: bool) -> None:
        self._close_upstream()
        STREAM_ENDS.labels(
            "disconnect" if disconnected else ("broken" if interrupted else "complete")
        ).inc()
        try:
            self._on_finish(self._processor, interrupted)
        except Exception:
            logger.exception("stream finisher failed")

    async def _pump(self, channel: _Channel) -> str:
        """Relay until the upstream ends or the output reached its cap; why the upstream
        broke off (idle timeout, error), empty when it did not."""
        processor = self._processor
        if self._initial:
            await channel.body(self._initial)
        try:
            if not processor.cut:
                async for data in self._chunks:
                    frames = processor.feed(data)
                    if frames:
                        await channel.body(frames)
                    if processor.cut:
                        break
        except TimeoutError:
            logger.warning("upstream stream idle timeout")
            return "idle timeout"
        except UPSTREAM_ERRORS as exc:
            logger.warning("upstream stream broke: %s", type(exc).__name__)
            return type(exc).__name__
        if processor.cut:
            self._close_upstream()  # read no more than the hold covers
            return ""
        rest = processor.finish()
        if rest:
            await channel.body(rest)
        return ""


class PseudoStreamResponse(StreamBase):
    """`NON_STREAM_ONLY` channels: SSE headers at once, `: WAITING FOR UPSTREAM` comments
    while the non-stream call runs, then the whole answer as SSE frames.

    `produce()` makes the call(s) and returns the frames to send (answer or error);
    `on_cancel()` runs when the client left before the frames were sent.
    """

    def __init__(
        self,
        produce: Callable[[], AsyncIterator[bytes]],
        *,
        headers: Mapping[str, str],
        wait_seconds: float,
        on_cancel: Callable[[], None],
        done_frame: bytes = DONE_FRAME,
        wait_frame: bytes = WAIT_FRAME,
        media_type: str = SSE_TYPE,
    ) -> None:
        super().__init__(headers, wait_seconds, media_type)
        self.ping_frame = wait_frame
        self._done_frame = done_frame
        self._produce = produce
        self._on_cancel = on_cancel
        self._complete = False

    async def run(self, channel: _Channel) -> bool:
        async for frames in self._produce():
            await channel.body(frames)
        await channel.body(self._done_frame, more=False)
        self._complete = True
        return True

    async def cleanup(self, interrupted: bool, disconnected: bool) -> None:
        STREAM_ENDS.labels("disconnect" if disconnected else "pseudo").inc()
        if not self._complete:
            try:
                self._on_cancel()
            except Exception:
                logger.exception("pseudo-stream cancel hook failed")


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


def completion_to_chunks(reply: dict[str, Any], *, include_usage: bool) -> bytes:
    """A non-stream chat completion re-emitted as stream chunks (pseudo-stream)."""
    base = {
        "id": reply.get("id", ""),
        "object": "chat.completion.chunk",
        "created": reply.get("created", int(time.time())),
        "model": reply.get("model", ""),
    }
    frames: list[bytes] = []
    finishes: list[dict[str, Any]] = []
    for choice in reply.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        raw_message = choice.get("message")
        message: dict[str, Any] = raw_message if isinstance(raw_message, dict) else {}
        delta: dict[str, Any] = {"role": message.get("role", "assistant")}
        for key in ("content", "reasoning_content", "refusal"):
            if message.get(key) is not None:
                delta[key] = message[key]
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            delta["tool_calls"] = [
                {"index": i, **call} for i, call in enumerate(calls) if isinstance(call, dict)
            ]
        index = choice.get("index", 0)
        item = {"index": index, "delta": delta, "finish_reason": None}
        frames.append(b"data: " + orjson.dumps({**base, "choices": [item]}) + b"\n\n")
        finishes.append({"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")})
    if finishes:
        frames.append(b"data: " + orjson.dumps({**base, "choices": finishes}) + b"\n\n")
    usage = reply.get("usage")
    if include_usage and isinstance(usage, dict):
        frames.append(usage_chunk(base, usage))
    return b"".join(frames)
