"""A very fast fake OpenAI upstream: a raw asyncio HTTP/1.1 server, run as its own process.

`python -m bench.fake_upstream --port N [--first-delay-ms X --chunk-delay-ms Y --chunks Z]`.
It answers POST .../chat/completions (JSON with usage, or SSE: a role chunk, `--chunks` content
chunks, a usage chunk and `[DONE]`), POST .../embeddings and GET .../models, with keep-alive.
The model `bench-slow` streams `--slow-chunks` chunks `--slow-interval-ms` apart. Every stream
content chunk carries `t=<CLOCK_MONOTONIC ns>` of its send time, so a client on the same machine
can measure chunk-delivery delay. Nothing is logged on the hot path.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import time
from dataclasses import dataclass
from typing import cast

import orjson
import uvloop

SLOW_MODEL = "bench-slow"
_MODEL_RE = re.compile(rb'"model"\s*:\s*"([^"]*)"')
_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')
_EMBEDDING = orjson.dumps({
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.0125] * 256}],
    "model": "bench-embed",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
})  # fmt: skip
_MAX_HEADER = 64 * 1024


@dataclass(frozen=True, slots=True)
class FakeConfig:
    """Timing of the fake's answers (seconds)."""

    first_delay: float = 0.0
    chunk_delay: float = 0.0
    chunks: int = 16
    slow_chunks: int = 5
    slow_interval: float = 1.0


def _response(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    head = (
        b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: " + content_type
        + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )  # fmt: skip
    return head + body


def chat_json(model: str, prompt_tokens: int) -> bytes:
    return orjson.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Hello from the bench!"}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 5,
                  "total_tokens": prompt_tokens + 5},
    })  # fmt: skip


def _sse(payload: dict[str, object]) -> bytes:
    data = b"data: " + orjson.dumps(payload) + b"\n\n"
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _chunk(model: str, delta: dict[str, str], finish: str | None = None) -> bytes:
    return _sse({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })  # fmt: skip


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_DONE = b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"


class FakeProtocol(asyncio.Protocol):
    """One keep-alive connection; requests are answered in order (no pipelining overlap)."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.busy = False  # a delayed / streamed answer is being written
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._drain()

    def _drain(self) -> None:
        while not self.busy and not self.closed:
            request = self._take_request()
            if request is None:
                return
            self._answer(*request)

    def _take_request(self) -> tuple[bytes, bytes] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > _MAX_HEADER and self.transport is not None:
                self.transport.close()
            return None
        head = self.buffer[:end]
        length = 0
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            stop = lower.find(b"\r\n", at + 2)
            length = int(lower[at + 17 : stop if stop >= 0 else len(lower)])
        total = end + 4 + length
        if len(self.buffer) < total:
            return None
        body = self.buffer[end + 4 : total]
        self.buffer = self.buffer[total:]
        return head, body

    def _answer(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        line = head[: head.find(b"\r\n")]
        method, _, rest = line.partition(b" ")
        path = rest.partition(b" ")[0].partition(b"?")[0]
        if method == b"GET" and path.endswith(b"/models"):
            models = {"object": "list", "data": [{"id": "bench-model", "object": "model"}]}
            self.transport.write(_response("200 OK", orjson.dumps(models)))
        elif method == b"POST" and path.endswith(b"/chat/completions"):
            self._chat(body)
        elif method == b"POST" and path.endswith(b"/embeddings"):
            self.transport.write(_response("200 OK", _EMBEDDING))
        else:
            self.transport.write(_response("404 Not Found", b'{"error":{"message":"no route"}}'))

    def _chat(self, body: bytes) -> None:
        found = _MODEL_RE.search(body)
        model = found.group(1).decode() if found else "bench-model"
        prompt_tokens = max(10, len(body) // 4)
        stream = _STREAM_RE.search(body) is not None
        if not stream and self.config.first_delay <= 0:
            assert self.transport is not None
            self.transport.write(_response("200 OK", chat_json(model, prompt_tokens)))
            return
        self.busy = True
        asyncio.get_running_loop().create_task(self._slow_answer(model, prompt_tokens, stream))

    async def _slow_answer(self, model: str, prompt_tokens: int, stream: bool) -> None:
        assert self.transport is not None
        try:
            if self.config.first_delay > 0:
                await asyncio.sleep(self.config.first_delay)
            if not stream:
                self.transport.write(_response("200 OK", chat_json(model, prompt_tokens)))
            else:
                await self._stream(model, prompt_tokens)
        finally:
            self.busy = False
        if not self.closed:
            self._drain()

    async def _stream(self, model: str, prompt_tokens: int) -> None:
        assert self.transport is not None
        slow = model == SLOW_MODEL
        count = self.config.slow_chunks if slow else self.config.chunks
        delay = self.config.slow_interval if slow else self.config.chunk_delay
        self.transport.write(_STREAM_HEAD + _chunk(model, {"role": "assistant", "content": ""}))
        for _ in range(count):
            if delay > 0:
                await asyncio.sleep(delay)
            if self.closed:
                return
            stamp = f"t={time.monotonic_ns()} "
            self.transport.write(_chunk(model, {"content": stamp}))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": count,
                 "total_tokens": prompt_tokens + count}  # fmt: skip
        tail = _chunk(model, {}, "stop") + _sse({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
            "model": model, "choices": [], "usage": usage,
        })  # fmt: skip
        self.transport.write(tail + _DONE)


async def serve(host: str, port: int, config: FakeConfig) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: FakeProtocol(config), host, port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake upstream listening on http://{host}:{port}", flush=True)
    async with server:
        await stop.wait()


def parse_args(argv: list[str] | None = None) -> tuple[str, int, FakeConfig]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first-delay-ms", type=float, default=0.0)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--slow-chunks", type=int, default=5)
    parser.add_argument("--slow-interval-ms", type=float, default=1000.0)
    args = parser.parse_args(argv)
    config = FakeConfig(
        first_delay=args.first_delay_ms / 1000, chunk_delay=args.chunk_delay_ms / 1000,
        chunks=args.chunks, slow_chunks=args.slow_chunks,
        slow_interval=args.slow_interval_ms / 1000,
    )  # fmt: skip
    return str(args.host), int(args.port), config


def main() -> None:
    host, port, config = parse_args()
    uvloop.run(serve(host, port, config))


if __name__ == "__main__":
    main()
