"""A fake Anthropic Messages API (`POST /v1/messages`) on loopback, speaking Anthropic's wire
format: Message objects, the SSE event sequence and `{"type":"error","error":{...}}` bodies.

Like the real API it refuses a request without `x-api-key`, without `anthropic-version`,
without `max_tokens` or with an empty `messages` (400 invalid_request_error).

Behaviour by model name:
- `fail-<status>[-anything]`: that status with Anthropic's error body (type from the status);
- `stream-error`: a 200 stream whose first event is an `overloaded_error` event;
- `midstream-error`: a stream that says some text, then an `error` event;
- `tools`: two parallel tool_use blocks (input streamed as several input_json_delta pieces);
- `thinking`: a thinking block, then text;
- `max`: stop_reason max_tokens; `stopseq`: stop_reason stop_sequence (`END`);
- anything else: `reply_text`, end_turn.
Usage: `input_tokens`, `output_tokens`, `cache_read`, `cache_creation` per instance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer

REPLY = "Hello from Claude!"
THOUGHT = "Let me think about it."
TOOL_USES = [
    {"id": "toolu_01", "name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}},
    {"id": "toolu_02", "name": "get_time", "input": {"zone": "Europe/Paris"}},
]
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str) -> Response:
    error = {"type": ERROR_TYPES.get(status, "api_error"), "message": message}
    return Response(
        orjson.dumps({"type": "error", "error": error}),
        status,
        media_type="application/json",
        headers={"request-id": "req_fake"},
    )


def _event(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, **data}


def sse(event: dict[str, Any]) -> bytes:
    """One event as Anthropic sends it: an `event:` line naming the type, then its data."""
    return f"event: {event['type']}\n".encode() + b"data: " + orjson.dumps(event) + b"\n\n"


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


@dataclass
class FakeAnthropic(LoopbackServer):
    reply_text: str = REPLY
    input_tokens: int = 10
    output_tokens: int = 5
    cache_read: int = 0
    cache_creation: int = 0

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])

    def usage(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation,
            "cache_read_input_tokens": self.cache_read,
            "output_tokens": self.output_tokens,
        }

    async def _messages(self, request: Request) -> Response:
        body = await self.record(request)
        if not request.headers.get("x-api-key"):
            return error_body(401, "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            return error_body(400, "anthropic-version: header is required")
        if not isinstance(body.get("max_tokens"), int):
            return error_body(400, "max_tokens: Field required")
        if not body.get("messages"):
            return error_body(400, "messages: at least one message is required")
        model = str(body.get("model", ""))
        code = model.split("-")[1] if model.startswith("fail-") else ""
        if code.isdigit():
            return error_body(int(code), f"fake failure {code}")
        content, stop = self.content(model)
        if body.get("stream"):
            return StreamingResponse(
                self._sse(self.events(model, content, stop)), media_type="text/event-stream"
            )
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": "END" if stop == "stop_sequence" else None,
            "usage": self.usage(),
        }
        return Response(orjson.dumps(message), media_type="application/json")

    def content(self, model: str) -> tuple[list[dict[str, Any]], str]:
        if model.startswith("tools"):
            return [{"type": "text", "text": "Checking."}] + [
                {"type": "tool_use", **use} for use in TOOL_USES
            ], "tool_use"
        text = [{"type": "text", "text": self.reply_text}]
        if model.startswith("thinking"):
            return [{"type": "thinking", "thinking": THOUGHT, "signature": "sig"}, *text], (
                "end_turn"
            )
        if model.startswith("max"):
            return text, "max_tokens"
        if model.startswith("stopseq"):
            return text, "stop_sequence"
        return text, "end_turn"

    @staticmethod
    async def _sse(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
        for event in events:
            yield sse(event)

    def events(self, model: str, content: list[dict[str, Any]], stop: str) -> list[dict[str, Any]]:
        """The stream's events for `content` (Bedrock wraps the same events in its framing)."""
        if model.startswith("stream-error"):
            return [
                _event("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
            ]
        events: list[dict[str, Any]] = []
        start_usage = {**self.usage(), "output_tokens": 1}
        message: dict[str, Any] = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        events.append(_event("message_start", {"message": message}))
        events.append(_event("ping", {}))
        for index, block in enumerate(content):
            events += self._block(index, block)
            if model.startswith("midstream-error"):
                error = {"type": "api_error", "message": "Internal server error"}
                events.append(_event("error", {"error": error}))
                return events
        delta = {"stop_reason": stop, "stop_sequence": "END" if stop == "stop_sequence" else None}
        events.append(
            _event(
                "message_delta", {"delta": delta, "usage": {"output_tokens": self.output_tokens}}
            )
        )
        events.append(_event("message_stop", {}))
        return events

    def _block(self, index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
        kind = block["type"]
        frames: list[dict[str, Any]] = []
        start: dict[str, Any]
        use: dict[str, Any]
        if kind == "text":
            frames.append(
                _event(
                    "content_block_start",
                    {"index": index, "content_block": {"type": "text", "text": ""}},
                )
            )
            for piece in _pieces(block["text"], 6):
                delta = {"type": "text_delta", "text": piece}
                frames.append(_event("content_block_delta", {"index": index, "delta": delta}))
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": ""}
            frames.append(_event("content_block_start", {"index": index, "content_block": start}))
            delta = {"type": "thinking_delta", "thinking": block["thinking"]}
            frames.append(_event("content_block_delta", {"index": index, "delta": delta}))
            delta = {"type": "signature_delta", "signature": block["signature"]}
            frames.append(_event("content_block_delta", {"index": index, "delta": delta}))
        else:
            use = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            frames.append(_event("content_block_start", {"index": index, "content_block": use}))
            for piece in _pieces(orjson.dumps(block["input"]).decode(), 7):
                delta = {"type": "input_json_delta", "partial_json": piece}
                frames.append(_event("content_block_delta", {"index": index, "delta": delta}))
        frames.append(_event("content_block_stop", {"index": index}))
        return frames
