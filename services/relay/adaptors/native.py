"""Shared pieces of the adaptors whose provider speaks its own API (Anthropic, Gemini): the
canonical request read back from pass-through bytes, data URLs, OpenAI chunk and completion
builders, and the line splitter their stream converters feed on.

Such an adaptor converts the canonical OpenAI chat request into the provider's wire format and
the provider's answer back into an OpenAI chat completion (or chunks), so everything after it
(usage accounting, egress formats, the output cap) sees OpenAI's shapes only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import orjson

from services.relay.adaptors.base import Json, Outgoing
from services.relay.endpoints import Endpoint
from services.relay.errors import RelayError


def canonical_body(body: Outgoing) -> Json:
    """The shaped request as JSON: pass-through bytes are the client's OpenAI body, which a
    native provider cannot read as it is (upstream adaptors opt out of pass-through too)."""
    if body.json is not None:
        return body.json
    try:
        parsed = orjson.loads(body.raw or b"{}")
    except orjson.JSONDecodeError:
        raise RelayError(400, "the request body is not JSON", code="invalid_json") from None
    if not isinstance(parsed, dict):
        raise RelayError(400, "the request body must be a JSON object", code="invalid_json")
    return parsed


# OpenAI's error type for a provider's HTTP status (the rest are `upstream_error`).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def message_list(body: Json) -> list[Json]:
    """The chat request's messages, each an object; a 400 otherwise."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RelayError(400, "messages must be a non-empty list", type_="invalid_request_error")
    if not all(isinstance(message, dict) for message in messages):
        raise RelayError(400, "each message must be an object", type_="invalid_request_error")
    return messages


def input_texts(body: Json) -> list[str]:
    """An embeddings request's input as a list of strings (a provider taking text only)."""
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise RelayError(
            400,
            "input must be a string or a list of strings for this channel type",
            type_="invalid_request_error",
            param="input",
        )
    return texts


def functions_of(tools: Any) -> Iterator[Json]:
    """The named function definitions among OpenAI `tools`; other tool kinds and malformed
    entries are left out."""
    for tool in tools if isinstance(tools, list) else ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            yield function


def add_turn(turns: list[Json], role: str, key: str, items: list[Json]) -> None:
    """Append a turn under `key` ("content", "parts"), merged into the last one when it has
    the same role (Claude, Gemini and Converse want the roles to alternate); a turn with
    nothing in it is left out."""
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


def json_object(data: bytes) -> Json | None:
    """A provider's answer as a JSON object, or None (then it is relayed as it came)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def only(target_endpoint: Endpoint, *served: Endpoint) -> None:
    """Refuse an endpoint the provider's adaptor does not convert (a 400, never a guess)."""
    if target_endpoint not in served:
        raise RelayError(
            400,
            f"{target_endpoint.path} is not served by this channel type",
            type_="invalid_request_error",
            code="unsupported_endpoint",
        )


def split_data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL, else None."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head.removesuffix(";base64") or "application/octet-stream", data


def text_of(content: Any) -> str:
    """The text of an OpenAI message content (a string or an array of parts)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [
        part["text"]
        for part in content
        if isinstance(part, dict)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
    ]
    return "\n".join(texts)


def arguments_of(arguments: Any) -> Json:
    """A tool call's JSON-text arguments as an object (a provider wants the object)."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def completion(*, id_: str, model: str, choices: list[Json], usage: Json | None) -> bytes:
    """An OpenAI chat completion."""
    body: Json = {
        "id": id_,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return orjson.dumps(body)


class ChunkWriter:
    """OpenAI `chat.completion.chunk` frames sharing one id, creation time and model."""

    __slots__ = ("created", "id", "model")

    def __init__(self, id_: str, model: str) -> None:
        self.id = id_
        self.model = model
        self.created = int(time.time())

    def _frame(self, choices: list[Json], usage: Json | None = None) -> bytes:
        chunk: Json = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def delta(self, delta: Json, finish_reason: str | None = None) -> bytes:
        return self._frame([{"index": 0, "delta": delta, "finish_reason": finish_reason}])

    def usage(self, usage: Json) -> bytes:
        """The usage-only chunk (no choices) that ends an OpenAI stream."""
        return self._frame([], usage)


class ProviderError(Exception):
    """A provider's failure that came without a non-2xx answer: an error event before anything
    was relayed, or a credential refused while exchanging it for a token. The attempt fails as
    a non-2xx answer with `status` would (the relay may still try another channel)."""

    def __init__(self, status: int, message: str, error: Json) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error


class ProviderStream:
    """What every provider's stream converter shares: OpenAI chunks under one id, the
    assistant's role chunk first, and a provider error that fails the attempt while nothing
    went out (another channel may answer) but only ends the stream with an error chunk after.
    A provider that answers an error as one JSON body instead of a stream (Baidu, Tencent) has
    it kept whole by `held` and read at `finish`."""

    __slots__ = ("_out", "_pending", "_sent")

    def __init__(self, model: str) -> None:
        self._out = ChunkWriter("chatcmpl-" + os.urandom(12).hex(), model)
        self._pending = b""
        self._sent = False

    def opening(self) -> bytes:
        """The role chunk, before the first content."""
        if self._sent:
            return b""
        self._sent = True
        return self._out.delta({"role": "assistant", "content": ""})

    def failed(self, exc: ProviderError) -> bytes:
        if not self._sent:
            raise exc
        return error_frame(exc.message, "upstream_error")

    def held(self, data: bytes) -> bool:
        """True when `data` belongs to a JSON body answered in place of the stream."""
        if self._pending or (not self._sent and data.lstrip().startswith(b"{")):
            self._pending += data
            return True
        return False


def message_error(
    status: int, body: bytes, types: dict[int, str] | None = None
) -> tuple[str, Json | None]:
    """The message and OpenAI error object of a provider whose error body is
    `{"message": ..., "code"?: ...}` (Cohere, Dify)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"bad response status code {status}", None
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(message, str) or not message:
        return f"bad response status code {status}", None
    code = payload.get("code")
    kind = (types or {}).get(status, "upstream_error")
    return message, {"type": kind, "code": code if isinstance(code, str) else None}


def error_frame(message: str, type_: str, code: str | None = None) -> bytes:
    """An error reported inside a stream whose headers already went out, as OpenAI-compatible
    upstreams send it."""
    error = {"message": message, "type": type_, "code": code}
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"


class Lines:
    """The whole lines of a byte stream whose lines may arrive in pieces."""

    __slots__ = ("_partial",)

    def __init__(self) -> None:
        self._partial = b""  # a line not yet ended

    def feed(self, data: bytes) -> list[bytes]:
        lines = (self._partial + data).split(b"\n") if self._partial else data.split(b"\n")
        self._partial = lines.pop()
        return lines

    def rest(self) -> bytes:
        """What came after the last line end, at the end of the stream."""
        rest, self._partial = self._partial, b""
        return rest


class DataLines:
    """Splits a provider's SSE bytes into the JSON payloads of its `data:` lines (a line may
    arrive in pieces; `event:` lines are redundant with the payloads' own type fields)."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines = Lines()

    def feed(self, data: bytes) -> list[Json]:
        lines = self._lines.feed(data)
        return [payload for line in lines if (payload := _payload(line)) is not None]

    def finish(self) -> list[Json]:
        payload = _payload(self._lines.rest())
        return [payload] if payload is not None else []


def _payload(line: bytes) -> Json | None:
    if not line.startswith(b"data:"):
        return None
    text = line[5:].strip()
    if not text or text == b"[DONE]":
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
