"""A fake OpenAI upstream: a real loopback HTTP server speaking OpenAI's wire formats.

Endpoints: chat/completions, completions, embeddings, moderations, images/generations,
images/edits and images/variations (multipart), audio/speech (binary), audio/transcriptions and
audio/translations (multipart), rerank, responses, models; any other POST path is recorded and
answered like chat/completions (adaptor URL tests).

Behaviour per request, by model name (or the `X-Fake-Behavior` header):
- `fail-500` / `fail-502` / `fail-400` / `fail-401` / `fail-429`: that status with an OpenAI
  error body;
- `fake-slow`: waits `slow_seconds` before answering (streams: before the first chunk);
- `fake-stall`: streams the role chunk, then stalls `stall_seconds` (idle-timeout tests);
- `fake-empty`: an empty reply (no text); `fake-blank`: a 200 with an empty body, or a stream
  with nothing but `[DONE]`;
- `fake-tools`: a tool call instead of text; `fake-parallel-tools`: PARALLEL_CALLS, their
  arguments streamed in pieces; `fake-reasoning`: reasoning_content then text;
- `fake-length`: `reply_text`, stopped at the output limit (finish_reason `length`);
- `fake-nousage`: no usage at all (local counting);
- `fake-break`: a stream that stops in the middle of a line;
- `fake-drip`: a stream of `drip_chunks` pieces, `drip_seconds` apart (disconnect tests);
- anything else: `reply_text`, with usage `prompt_tokens` / `completion_tokens`.
Per chat request, by body field (clients send them with the SDK's `extra_body`):
- `fake_usage`: JSON text spliced in verbatim as the reply's usage block (stream: the final
  usage chunk's), so any shape reaches the relay as written, integers beyond 64 bits included;
- `fake_words`: the reply is that many words (`w0 w1 …`), for long streams.
Per instance: `behavior` applies one of these to every request, `force_status` makes every
call fail with that status (a broken channel; set it back to None and the channel recovers),
`stream_usage` turns the final usage chunk off (usage fallback tests).
Balance APIs (GET, answering `credit_usd` granted and `used_usd` spent in each provider's own
shape): OpenAI's `/v1/dashboard/billing/subscription` + `/usage` (cents), OpenRouter's
`/v1/credits`, DeepSeek's `/user/balance`, SiliconFlow's `/v1/user/info`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

DEFAULT_REPLY = "Hello from the fake upstream!"
REASONING = "Let me think."
TOOL_CALL = {
    "id": "call_fake",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
PARALLEL_CALLS = [
    {
        "id": "call_paris",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    },
    {
        "id": "call_rome",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Rome", "unit": "C"}'},
    },
]
TOOL_BEHAVIORS = ("fake-tools", "fake-parallel-tools")
Handler = Callable[[dict[str, Any], str], Awaitable[Response]]
USAGE_SLOT = "__fake_usage__"  # stands for the usage block until the raw `fake_usage` replaces it


SPEECH_BYTES = b"ID3fake-mp3-audio" + bytes(64)
TRANSCRIPT = "the quick brown fox"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]  # JSON body, or the form's fields (files as {"filename", "size"})
    query: str = ""


@dataclass
class FakeOpenAI:
    """One fake upstream; `start()` / `stop()` run it on a background thread."""

    reply_text: str = DEFAULT_REPLY
    prompt_tokens: int = 10
    completion_tokens: int = 5
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    stream_usage: bool = True
    force_status: int | None = None
    slow_seconds: float = 1.0
    stall_seconds: float = 10.0
    drip_chunks: int = 50
    drip_seconds: float = 0.1
    behavior: str = ""  # applied to every request when set (e.g. "fake-slow")
    drip_sent: int = field(default=0, init=False)  # drip pieces written (disconnect tests)
    models: list[str] = field(default_factory=lambda: ["gpt-4o-mini", "gpt-4o"])
    credit_usd: float = 20.0  # balance APIs: granted
    failing_keys: set[str] = field(default_factory=set)  # these Bearer keys get a 401
    used_usd: float = 7.5  # balance APIs: spent
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

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

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

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    # ------------------------------------------------------------------ the app

    def app(self) -> Starlette:
        json_routes = {
            "/v1/chat/completions": self._chat,
            "/v1/completions": self._completions,
            "/v1/embeddings": self._embeddings,
            "/v1/moderations": self._moderations,
            "/v1/images/generations": self._images,
            "/v1/audio/speech": self._speech,
            "/v1/rerank": self._rerank,
            "/v1/responses": self._responses,
        }
        form_routes = {
            "/v1/images/edits": self._images,
            "/v1/images/variations": self._images,
            "/v1/audio/transcriptions": self._transcription,
            "/v1/audio/translations": self._transcription,
        }
        routes = [
            Route(path, self._json_endpoint(handler), methods=["POST"])
            for path, handler in json_routes.items()
        ]
        routes += [
            Route(path, self._form_endpoint(handler), methods=["POST"])
            for path, handler in form_routes.items()
        ]
        routes.append(Route("/v1/models", self._models, methods=["GET"]))
        routes.append(Route("/v1beta/openai/models", self._gemini_models, methods=["GET"]))
        balance_routes = {
            "/v1/dashboard/billing/subscription": self._subscription,
            "/v1/dashboard/billing/usage": self._billing_usage,
            "/v1/credits": self._openrouter_credits,
            "/user/balance": self._deepseek_balance,
            "/v1/user/info": self._siliconflow_info,
        }
        routes += [
            Route(path, self._get_endpoint(handler), methods=["GET"])
            for path, handler in balance_routes.items()
        ]
        routes.append(Route("/{rest:path}", self._json_endpoint(self._chat), methods=["POST"]))
        return Starlette(routes=routes)

    def _json_endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            body = orjson.loads(raw) if raw.strip() else {}
            return await self._dispatch(request, body, handler)

        return endpoint

    def _form_endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body: dict[str, Any] = {}
            async with request.form() as form:
                for name, value in form.multi_items():
                    if isinstance(value, str):
                        body[name] = value
                    else:
                        data = await value.read()
                        body[name] = {"filename": value.filename, "size": len(data)}
            return await self._dispatch(request, body, handler)

        return endpoint

    async def _dispatch(self, request: Request, body: dict[str, Any], handler: Handler) -> Response:
        self._record(request, body)
        behavior = (
            request.headers.get("x-fake-behavior") or self.behavior or str(body.get("model", ""))
        )
        if self.force_status is not None:
            return _error(self.force_status)
        if request.headers.get("authorization", "").removeprefix("Bearer ") in self.failing_keys:
            return _error(401)
        if behavior.startswith("fail-") and behavior[5:].isdigit():
            return _error(int(behavior[5:]))
        if behavior == "fake-leak-401":  # quotes the key it got and an internal address
            key = request.headers.get("authorization", "").removeprefix("Bearer ")
            message = f"Incorrect API key provided: {key}. Ask http://10.20.30.40:8080/admin"
            error = {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
            return _json({"error": error}, 401)
        if behavior == "fake-redirect":
            return Response(b"", 302)  # no Location
        if behavior == "fake-slow":
            await asyncio.sleep(self.slow_seconds)
        if behavior == "fake-blank" and body.get("stream") is not True:
            return Response(b"", 200, media_type="application/json")
        return await handler(body, behavior)

    def _record(self, request: Request, body: dict[str, Any]) -> None:
        entry = RecordedRequest(
            request.method,
            request.url.path,
            {k.lower(): v for k, v in request.headers.items()},
            body,
            request.url.query,
        )
        with self._lock:
            self.requests.append(entry)
            del self.requests[: -self.max_recorded]

    def _get_endpoint(
        self, handler: Callable[[], dict[str, Any]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            self._record(request, {})
            if self.force_status is not None:
                return _error(self.force_status)
            return _json(handler())

        return endpoint

    def _subscription(self) -> dict[str, Any]:
        return {
            "object": "billing_subscription",
            "has_payment_method": False,
            "hard_limit_usd": self.credit_usd,
            "system_hard_limit_usd": self.credit_usd,
        }

    def _billing_usage(self) -> dict[str, Any]:
        return {"object": "list", "total_usage": self.used_usd * 100}  # cents

    def _openrouter_credits(self) -> dict[str, Any]:
        return {"data": {"total_credits": self.credit_usd, "total_usage": self.used_usd}}

    def _deepseek_balance(self) -> dict[str, Any]:
        left = f"{self.credit_usd - self.used_usd:.2f}"
        info = {"total_balance": left, "granted_balance": "0.00", "topped_up_balance": left}
        return {"is_available": True, "balance_infos": [{"currency": "USD", **info}]}

    def _siliconflow_info(self) -> dict[str, Any]:
        left = f"{self.credit_usd - self.used_usd:.2f}"
        data = {"id": "u1", "balance": left, "chargeBalance": "0", "totalBalance": left}
        return {"code": 20000, "message": "OK", "status": True, "data": data}

    async def _gemini_models(self, request: Request) -> Response:
        """Gemini's OpenAI-compatible list names models `models/<id>`."""
        self._record(request, {})
        data = [{"id": f"models/{m}", "object": "model", "owned_by": "google"} for m in self.models]
        return _json({"object": "list", "data": data})

    async def _models(self, request: Request) -> Response:
        self._record(request, {})
        if self.force_status is not None:
            return _error(self.force_status)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return _json({"object": "list", "data": data})

    async def _chat(self, body: dict[str, Any], behavior: str) -> Response:
        model = str(body.get("model", ""))
        text = (
            "" if behavior in ("fake-empty", *TOOL_BEHAVIORS) else _reply_of(body, self.reply_text)
        )
        raw_usage = body.get("fake_usage")
        usage = raw_usage.encode() if isinstance(raw_usage, str) else None
        if body.get("stream") is True:
            options = body.get("stream_options") or {}
            include_usage = (
                self.stream_usage
                and options.get("include_usage") is True
                and behavior != "fake-nousage"
            )
            return _sse(self._chunks(model, text, include_usage, behavior, usage))
        reply = self._completion(model, text, behavior)
        if behavior == "fake-nousage":
            reply.pop("usage")
        elif usage is not None:
            reply["usage"] = USAGE_SLOT
            return Response(_spliced(reply, usage), 200, media_type="application/json")
        return _json(reply)

    async def _completions(self, body: dict[str, Any], behavior: str) -> Response:
        model = str(body.get("model", ""))
        base = {"id": "cmpl-fake", "object": "text_completion", "created": 0, "model": model}
        if body.get("stream") is True:

            async def frames() -> AsyncIterator[bytes]:
                for piece in split_reply(self.reply_text):
                    choice = {"index": 0, "text": piece, "finish_reason": None}
                    yield b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"
                yield b"data: [DONE]\n\n"

            return _sse(frames())
        choice = {"index": 0, "text": self.reply_text, "finish_reason": "stop", "logprobs": None}
        return _json({**base, "choices": [choice], "usage": self.usage()})

    async def _embeddings(self, body: dict[str, Any], behavior: str) -> Response:
        inputs = body.get("input")
        count = len(inputs) if isinstance(inputs, list) else 1
        data = [
            {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(count)
        ]
        usage = {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens}
        reply: dict[str, Any] = {"object": "list", "data": data, "model": body.get("model")}
        if behavior != "fake-nousage":
            reply["usage"] = usage
        return _json(reply)

    async def _moderations(self, body: dict[str, Any], behavior: str) -> Response:
        result = {"flagged": False, "categories": {}, "category_scores": {}}
        return _json({"id": "modr-fake", "model": body.get("model"), "results": [result]})

    async def _images(self, body: dict[str, Any], behavior: str) -> Response:
        n = int(body.get("n") or 1)
        data = [{"url": f"https://images.example/{i}.png"} for i in range(n)]
        return _json({"created": int(time.time()), "data": data})

    async def _speech(self, body: dict[str, Any], behavior: str) -> Response:
        return Response(SPEECH_BYTES, 200, media_type="audio/mpeg")

    async def _transcription(self, body: dict[str, Any], behavior: str) -> Response:
        return _json({"text": TRANSCRIPT})

    async def _rerank(self, body: dict[str, Any], behavior: str) -> Response:
        documents = body.get("documents") or []
        results = [{"index": i, "relevance_score": 1.0 / (i + 1)} for i in range(len(documents))]
        return _json({"results": results, "usage": {"total_tokens": self.prompt_tokens}})

    async def _responses(self, body: dict[str, Any], behavior: str) -> Response:
        model = str(body.get("model", ""))
        text = _reply_of(body, self.reply_text)
        usage = {
            "input_tokens": self.prompt_tokens,
            "output_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        message = {
            "id": "msg-fake",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
        response: dict[str, Any] = {
            "id": "resp-fake",
            "object": "response",
            "created_at": int(time.time()),
            "model": model,
            "status": "completed",
            "output": [message],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": usage,
        }
        if body.get("stream") is not True:
            return _json(response)

        async def events() -> AsyncIterator[bytes]:
            created = {**response, "status": "in_progress", "output": [], "usage": None}
            yield _event("response.created", {"response": created, "sequence_number": 0})
            for index, piece in enumerate(split_reply(text)):
                delta = {
                    "item_id": "msg-fake",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": piece,
                    "sequence_number": index + 1,
                }
                yield _event("response.output_text.delta", delta)
            yield _event("response.completed", {"response": response, "sequence_number": 99})

        return _sse(events())

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }

    def _completion(self, model: str, text: str, behavior: str = "") -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        finish = "stop"
        if behavior in TOOL_BEHAVIORS:
            calls = [TOOL_CALL] if behavior == "fake-tools" else PARALLEL_CALLS
            message = {"role": "assistant", "content": None, "tool_calls": calls}
            finish = "tool_calls"
        elif behavior == "fake-reasoning":
            message["reasoning_content"] = REASONING
        elif behavior == "fake-length":
            finish = "length"
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": self.usage(),
        }

    async def _chunks(
        self, model: str, text: str, include_usage: bool, behavior: str, usage: bytes | None
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

        if behavior == "fake-blank":
            yield b"data: [DONE]\n\n"
            return
        role = {"role": "assistant", "content": ""}
        yield frame([{"index": 0, "delta": role, "finish_reason": None}], **usage_field)
        if behavior == "fake-stall":
            await asyncio.sleep(self.stall_seconds)
        if behavior == "fake-stall-late":  # some text, then silence
            yield frame([{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}])
            await asyncio.sleep(self.stall_seconds)
        if behavior == "fake-tools":
            call = {"index": 0, **TOOL_CALL}
            yield frame([{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}])
            yield frame([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
        if behavior == "fake-parallel-tools":
            for frames in _streamed_calls(PARALLEL_CALLS):
                yield frame([{"index": 0, "delta": {"tool_calls": frames}, "finish_reason": None}])
            yield frame([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
        if behavior == "fake-reasoning":
            delta = {"reasoning_content": REASONING}
            yield frame([{"index": 0, "delta": delta, "finish_reason": None}], **usage_field)
        if behavior == "fake-drip":
            for index in range(self.drip_chunks):
                await asyncio.sleep(self.drip_seconds)
                delta = {"content": f"w{index} "}
                yield frame([{"index": 0, "delta": delta, "finish_reason": None}])
                self.drip_sent += 1
        if behavior == "fake-break":
            whole = frame([{"index": 0, "delta": {"content": text}, "finish_reason": None}])
            yield whole[: len(whole) // 2]
            return
        if behavior not in TOOL_BEHAVIORS:  # a tool call's stream already finished
            for piece in split_reply(text):
                delta = {"content": piece}
                yield frame([{"index": 0, "delta": delta, "finish_reason": None}], **usage_field)
            finish = "length" if behavior == "fake-length" else "stop"
            yield frame([{"index": 0, "delta": {}, "finish_reason": finish}], **usage_field)
        if include_usage and usage is not None:
            raw = _spliced({**base, "choices": [], "usage": USAGE_SLOT}, usage)
            yield b"data: " + raw + b"\n\n"
        elif include_usage:
            yield frame([], usage=self.usage())
        yield b"data: [DONE]\n\n"


def _streamed_calls(calls: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Tool call deltas as OpenAI streams them: the id and name first, then the arguments in
    two pieces."""
    deltas: list[list[dict[str, Any]]] = []
    for index, call in enumerate(calls):
        function = call["function"]
        arguments = function["arguments"]
        half = len(arguments) // 2
        head = {"name": function["name"], "arguments": ""}
        deltas.append([{"index": index, "id": call["id"], "type": "function", "function": head}])
        for piece in (arguments[:half], arguments[half:]):
            deltas.append([{"index": index, "function": {"arguments": piece}}])
    return deltas


def _reply_of(body: dict[str, Any], default: str) -> str:
    words = body.get("fake_words")
    if isinstance(words, int) and not isinstance(words, bool):
        return " ".join(f"w{index}" for index in range(words))
    return default


def _spliced(body: dict[str, Any], usage: bytes) -> bytes:
    """`body` as JSON with the raw usage text in place of USAGE_SLOT."""
    return orjson.dumps(body).replace(orjson.dumps(USAGE_SLOT), usage, 1)


def split_reply(text: str) -> list[str]:
    """The reply in word-sized pieces (spaces kept), as a real stream would deliver it."""
    pieces: list[str] = []
    for index, word in enumerate(text.split(" ")):
        pieces.append(word if index == 0 else " " + word)
    return [p for p in pieces if p]


def _sse(frames: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        frames, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _event(kind: str, data: dict[str, Any]) -> bytes:
    payload = orjson.dumps({"type": kind, **data})
    return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"


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
