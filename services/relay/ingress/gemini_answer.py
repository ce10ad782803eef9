"""The way back to a Gemini client: chat completions as GenerateContentResponse objects, chat
streams as Gemini's stream (SSE with `alt=sse`, else one JSON array written as it grows), and
embeddings as embedContent / batchEmbedContents answers.

OpenAI's completion_tokens include reasoning; Gemini reports thoughts apart, so
candidatesTokenCount is the completion without them and thoughtsTokenCount the reasoning.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from services.relay.adaptors.base import Json, UsageCounts
from services.relay.errors import REQUEST_ID_HEADER
from services.relay.ingress import call_deltas, reply_text
from services.relay.upstream.streaming import SSE_TYPE

FINISH_REASONS = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "tool_calls": "STOP",
    "function_call": "STOP",
}
# The keep-alive: google-genai reads SSE comment lines as JSON, but skips a blank line; and
# whitespace between a JSON array's elements is still JSON.
PING = b"\n"
JSON_TYPE = "application/json"


def usage_metadata(usage: UsageCounts) -> Json:
    """usageMetadata: promptTokenCount includes cached tokens, thoughts are apart."""
    thoughts = min(usage.reasoning_tokens, usage.completion_tokens)
    candidates = usage.completion_tokens - thoughts
    meta: Json = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": candidates,
        "totalTokenCount": usage.prompt_tokens + candidates + thoughts,
    }
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    if usage.cached_tokens:
        meta["cachedContentTokenCount"] = min(usage.cached_tokens, usage.prompt_tokens)
    return meta


def finish_reason(finish: Any) -> str:
    return FINISH_REASONS.get(finish, "STOP") if isinstance(finish, str) else "STOP"


def function_call(call_id: Any, name: Any, arguments: Any) -> Json:
    """A functionCall part; arguments that are not a JSON object become `{}`."""
    try:
        args = orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        args = {}
    call: Json = {"name": str(name or ""), "args": args if isinstance(args, dict) else {}}
    if isinstance(call_id, str) and call_id:
        call["id"] = call_id
    return {"functionCall": call}


def _objects(holder: Json, name: str) -> list[Json]:
    """The objects of a list field (an upstream may send anything there)."""
    value = holder.get(name)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _index(choice: Json, default: int) -> int:
    index = choice.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else default


def _reasoning(holder: Json) -> str:
    reasoning = holder.get("reasoning_content") or holder.get("reasoning")
    return reasoning if isinstance(reasoning, str) else ""


def _parts(message: Json, thoughts: bool) -> list[Json]:
    parts: list[Json] = []
    reasoning = _reasoning(message)
    if thoughts and reasoning:
        parts.append({"text": reasoning, "thought": True})
    text = reply_text(message.get("content"))
    if text:
        parts.append({"text": text})
    for call in _objects(message, "tool_calls"):
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        parts.append(function_call(call.get("id"), function.get("name"), function.get("arguments")))
    return parts


def response_of(reply: Json, usage: UsageCounts, *, model: str, thoughts: bool) -> Json:
    """An OpenAI chat completion as a GenerateContentResponse (one candidate per choice)."""
    candidates: list[Json] = []
    for position, choice in enumerate(_objects(reply, "choices")):
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        index = _index(choice, position)
        candidates.append(
            {
                "content": {"role": "model", "parts": _parts(message, thoughts) or [{"text": ""}]},
                "finishReason": finish_reason(choice.get("finish_reason")),
                "index": index,
            }
        )
    answer: Json = {
        "candidates": candidates,
        "usageMetadata": usage_metadata(usage),
        "modelVersion": model,
    }
    if isinstance(reply.get("id"), str):
        answer["responseId"] = reply["id"]
    return answer


class Framing:
    """How stream objects are written: SSE events, or the elements of one JSON array."""

    __slots__ = ("_opened", "sse")

    def __init__(self, sse: bool) -> None:
        self.sse = sse
        self._opened = False

    def frame(self, obj: bytes) -> bytes:
        if self.sse:
            return b"data: " + obj + b"\r\n\r\n"
        if self._opened:
            return b",\r\n" + obj
        self._opened = True
        return b"[" + obj


class _Call:
    """One streamed tool call, its arguments gathered until the call is complete (Gemini sends
    a functionCall whole)."""

    __slots__ = ("arguments", "call_id", "name")

    def __init__(self, call_id: Any, name: Any) -> None:
        self.call_id = call_id
        self.name = name
        self.arguments = ""


class StreamCandidates:
    """OpenAI chat chunks in, GenerateContentResponse chunks out: text and thoughts as they
    come, each choice's function calls once its finish_reason arrives, and a last chunk with
    the finish reasons and usageMetadata."""

    __slots__ = ("_calls", "_finish", "_model", "_response_id", "_thoughts", "framing")

    def __init__(self, egress: GeminiEgress) -> None:
        self._model = egress.model
        self._thoughts = egress.thoughts
        self.framing = Framing(egress.sse)  # per attempt: a retried stream starts afresh
        self._response_id = ""
        self._calls: dict[int, list[_Call]] = {}  # choice index -> its calls, in order
        self._finish: dict[int, Any] = {}  # choice index -> finish_reason

    def _object(self, candidates: list[Json], usage: Json | None = None) -> bytes:
        answer: Json = {"candidates": candidates, "modelVersion": self._model}
        if usage is not None:
            answer["usageMetadata"] = usage
        if self._response_id:
            answer["responseId"] = self._response_id
        return self.framing.frame(orjson.dumps(answer))

    def _gather(self, index: int, calls: list[Any]) -> None:
        gathered = self._calls.setdefault(index, [])
        for delta in call_deltas(calls):
            position = delta.position
            fresh = not isinstance(position, int) or position >= len(gathered)
            if fresh or delta.replaces(gathered[-1].call_id):
                gathered.append(_Call(delta.call_id, delta.name))
            gathered[-1].arguments += delta.arguments

    def _flush(self, index: int) -> list[Json]:
        return [function_call(c.call_id, c.name, c.arguments) for c in self._calls.pop(index, [])]

    def chunk(self, chunk: Json) -> bytes:
        if not self._response_id and isinstance(chunk.get("id"), str):
            self._response_id = chunk["id"]
        candidates: list[Json] = []
        for choice in _objects(chunk, "choices"):
            index = _index(choice, 0)
            delta = choice.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            parts: list[Json] = []
            reasoning = _reasoning(delta)
            if self._thoughts and reasoning:
                parts.append({"text": reasoning, "thought": True})
            text = delta.get("content")
            if isinstance(text, str) and text:
                parts.append({"text": text})
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                self._gather(index, calls)
            if choice.get("finish_reason"):
                self._finish[index] = choice["finish_reason"]
                parts.extend(self._flush(index))
            if parts:
                candidates.append({"content": {"role": "model", "parts": parts}, "index": index})
        return self._object(candidates) if candidates else b""

    def end(self, usage: UsageCounts, *, cut: bool) -> bytes:
        indexes = sorted({0, *self._finish, *self._calls})
        candidates: list[Json] = []
        for index in indexes:
            parts = self._flush(index) or [{"text": ""}]
            reason = "MAX_TOKENS" if cut else finish_reason(self._finish.get(index))
            candidates.append(
                {
                    "content": {"role": "model", "parts": parts},
                    "finishReason": reason,
                    "index": index,
                }
            )
        return self._object(candidates, usage_metadata(usage))


class GeminiEgress:
    """One generateContent request's way back: its model, whether thoughts were asked for, and
    the stream's framing (SSE or a JSON array)."""

    __slots__ = (
        "_stream",
        "done_frame",
        "media_type",
        "model",
        "ping_frame",
        "sse",
        "thoughts",
        "wait_frame",
    )

    def __init__(self, *, model: str, thoughts: bool, sse: bool) -> None:
        self.model = model
        self.thoughts = thoughts
        self.sse = sse
        self.done_frame = b"" if sse else b"]"
        self._stream: StreamCandidates | None = None  # the current attempt's translator
        self.ping_frame = self.wait_frame = PING
        self.media_type = SSE_TYPE if sse else JSON_TYPE

    def reply(self, reply: Json, usage: UsageCounts) -> bytes:
        return orjson.dumps(response_of(reply, usage, model=self.model, thoughts=self.thoughts))

    def replay(self, data: bytes) -> bytes:
        """`reply`'s body as one stream chunk (pseudo-streams of non-stream-only channels)."""
        return Framing(self.sse).frame(data)

    def stream(self, prompt_tokens: int) -> StreamCandidates:
        self._stream = StreamCandidates(self)
        return self._stream

    def error(
        self, status: int, message: str, request_id: str, headers: dict[str, str] | None
    ) -> Response:
        return error_answer(status, message, request_id, headers)

    def error_event(self, status: int, message: str, request_id: str) -> bytes:
        """An error once a stream's headers went out: the error object as a stream chunk (the
        next element of the stream's JSON array when chunks already went out)."""
        framing = self._stream.framing if self._stream is not None else Framing(self.sse)
        return framing.frame(error_body(status, message, request_id))


class EmbedEgress:
    """One embedContent / batchEmbedContents request's way back (never a stream)."""

    __slots__ = ("batch",)

    done_frame = b""
    ping_frame = b""
    wait_frame = b""
    media_type = JSON_TYPE

    def __init__(self, *, batch: bool) -> None:
        self.batch = batch

    def reply(self, reply: Json, usage: UsageCounts) -> bytes:
        items = sorted(_objects(reply, "data"), key=lambda item: _index(item, 0))
        values = [{"values": item.get("embedding") or []} for item in items]
        if self.batch:
            return orjson.dumps({"embeddings": values})
        return orjson.dumps({"embedding": values[0] if values else {"values": []}})

    def replay(self, data: bytes) -> bytes:
        return data

    def stream(self, prompt_tokens: int) -> StreamCandidates:
        raise RuntimeError("embeddings are never streamed")

    def error(
        self, status: int, message: str, request_id: str, headers: dict[str, str] | None
    ) -> Response:
        return error_answer(status, message, request_id, headers)

    def error_event(self, status: int, message: str, request_id: str) -> bytes:
        return error_body(status, message, request_id)


# ---------------------------------------------------------------------- errors


STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def status_name(status: int) -> str:
    """The google.rpc.Code name Google puts beside an HTTP status."""
    known = STATUSES.get(status)
    if known is not None:
        return known
    return "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"


def error_body(status: int, message: str, request_id: str) -> bytes:
    """Google's error object: `{"error": {"code", "message", "status"}}`."""
    suffix = f" (request id: {request_id})" if request_id else ""
    error = {"code": status, "message": message + suffix, "status": status_name(status)}
    return orjson.dumps({"error": error})


def error_answer(
    status: int, message: str, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    merged = {REQUEST_ID_HEADER: request_id, **(headers or {})} if request_id else headers
    return Response(
        error_body(status, message, request_id),
        status_code=status,
        headers=merged,
        media_type=JSON_TYPE,
    )
