"""A fake OpenAI upstream: a real loopback HTTP server speaking the chat-completions wire format.

Behaviour per request, by model name (or the `X-Fake-Behavior` header):
- `fail-500` / `fail-502` / `fail-400` / `fail-401` / `fail-429`: that status with an OpenAI
  error body;
- `fake-slow`: waits `slow_seconds` before answering (streams: before the first chunk);
- `fake-stall`: streams the role chunk, then stalls `stall_seconds` (idle-timeout tests);
- `fake-empty`: an empty reply;
- anything else: `reply_text`, with usage `prompt_tokens` / `completion_tokens`.
Per instance: `force_status` makes every chat call fail with that status (a broken channel),
`stream_usage` turns the final usage chunk off (usage fallback tests).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

DEFAULT_REPLY = "Hello from the fake upstream!"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeOpenAI:
    """One fake upstream; `start()` / `stop()` run it on a background thread."""

    reply_text: str = DEFAULT_REPLY
    prompt_tokens: int = 10
    completion_tokens: int = 5
    cached_tokens: int = 0
    stream_usage: bool = True
    force_status: int | None = None
    slow_seconds: float = 1.0
    stall_seconds: float = 10.0
    models: list[str] = field(default_factory=lambda: ["gpt-4o-mini", "gpt-4o"])
    host: str = "127.0.0.1"
    max_recorded: int = 200
    requests: list[RecordedRequest] = field(default_factory=list, init=False)
    _server: uvicorn.Server | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _port: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def url(self) -> str:
        """Base URL (what a channel's base_url holds), without /v1."""
        return f"http://{self.host}:{self._port}"

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self.requests:
                raise AssertionError("the fake upstream received no request")
            return self.requests[-1]

    def requests_for(self, model: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.body.get("model") == model]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 10.0) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app(), log_config=None, access_log=False, lifespan="off", loop="asyncio"
        )
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]), name="fake-openai", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake OpenAI upstream did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    # ------------------------------------------------------------------ the app

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    def _record(self, request: Request, body: dict[str, Any]) -> None:
        entry = RecordedRequest(
            request.method,
            request.url.path,
            {k.lower(): v for k, v in request.headers.items()},
            body,
        )
        with self._lock:
            self.requests.append(entry)
            del self.requests[: -self.max_recorded]

    async def _models(self, request: Request) -> Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return _json({"object": "list", "data": data})

    async def _chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self._record(request, body)
        model = str(body.get("model", ""))
        behavior = request.headers.get("x-fake-behavior") or model
        if self.force_status is not None:
            return _error(self.force_status)
        if behavior.startswith("fail-") and behavior[5:].isdigit():
            return _error(int(behavior[5:]))
        if behavior == "fake-slow":
            await asyncio.sleep(self.slow_seconds)
        text = "" if behavior == "fake-empty" else self.reply_text
        if body.get("stream") is True:
            options = body.get("stream_options") or {}
            include_usage = self.stream_usage and options.get("include_usage") is True
            stall = self.stall_seconds if behavior == "fake-stall" else 0.0
            return StreamingResponse(
                self._chunks(model, text, include_usage, stall),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        return _json(self._completion(model, text))

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        }

    def _completion(self, model: str, text: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": self.usage(),
        }

    async def _chunks(
        self, model: str, text: str, include_usage: bool, stall: float
    ) -> AsyncIterator[bytes]:
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        usage_field: dict[str, Any] = {"usage": None} if include_usage else {}

        def frame(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + orjson.dumps({**base, "choices": choices, **extra}) + b"\n\n"

        role = {"role": "assistant", "content": ""}
        yield frame([{"index": 0, "delta": role, "finish_reason": None}], **usage_field)
        if stall:
            await asyncio.sleep(stall)
        for piece in split_reply(text):
            delta = {"content": piece}
            yield frame([{"index": 0, "delta": delta, "finish_reason": None}], **usage_field)
        yield frame([{"index": 0, "delta": {}, "finish_reason": "stop"}], **usage_field)
        if include_usage:
            yield frame([], usage=self.usage())
        yield b"data: [DONE]\n\n"


def split_reply(text: str) -> list[str]:
    """The reply in word-sized pieces (spaces kept), as a real stream would deliver it."""
    pieces: list[str] = []
    for index, word in enumerate(text.split(" ")):
        pieces.append(word if index == 0 else " " + word)
    return [p for p in pieces if p]


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _error(status: int) -> Response:
    error = {
        "message": f"fake upstream error {status}",
        "type": "server_error" if status >= 500 else "invalid_request_error",
        "param": None,
        "code": f"fake_{status}",
    }
    return _json({"error": error}, status)
