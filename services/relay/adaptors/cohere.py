"""Cohere (34): chat through Cohere's v1 chat API and rerank (upstream `relay/channel/cohere`).

Chat: the conversation's last message (a user turn) is `message`, the turns before it are
`chat_history` (USER / CHATBOT), system messages become the `preamble`; the answer's
`meta.billed_units` is the usage. Streams are newline-delimited JSON events (`text-generation`,
then `stream-end` with the final response). Unlike upstream, which keeps only the last user turn
and drops earlier ones from the history, every turn is sent, and MAX_TOKENS ends as `length`
(OpenAI's word) rather than `max_tokens`. Tools are refused (400) instead of silently dropped.
Rerank speaks the relay's own rerank format and passes through; embeddings go to `/v1/embed`
(`input_type` search_document, float vectors) and are billed by Cohere's billed input tokens;
other endpoints are refused.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from services.relay.adaptors.base import Json, Outgoing, StreamConverter, Target, UpstreamRequest
from services.relay.adaptors.native import (
    ERROR_TYPES,
    ChunkWriter,
    ProviderError,
    canonical_body,
    completion,
    error_frame,
    input_texts,
    json_object,
    message_error,
    message_list,
    only,
    text_of,
)
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.endpoints import CHAT, EMBEDDINGS, RERANK
from services.relay.errors import RelayError

SAFETY_MODES = frozenset({"NONE", "CONTEXTUAL", "STRICT"})
DEFAULT_MAX_TOKENS = 4000  # upstream's default when the client names none
ROLES = {"user": "USER", "assistant": "CHATBOT"}
FINISH = {"COMPLETE": "stop", "MAX_TOKENS": "length", "ERROR_TOXIC": "content_filter"}
# OpenAI sampling parameters and their Cohere names.
PARAMETERS = {
    "temperature": "temperature",
    "top_p": "p",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}


def _refuse(message: str) -> RelayError:
    return RelayError(400, message, type_="invalid_request_error", code="unsupported_parameter")


def to_chat(body: Json, model: str, safety: str, stream: bool) -> Json:
    """The OpenAI chat request as Cohere's v1 chat request."""
    if body.get("tools") or body.get("functions"):
        raise _refuse("tools are not supported by this channel type")
    preamble: list[str] = []
    turns: list[Json] = []
    for message in message_list(body):
        role = message.get("role")
        text = text_of(message.get("content"))
        if role in ("system", "developer"):
            preamble.append(text)
        elif role in ROLES:
            turns.append({"role": ROLES[role], "message": text})
        else:
            raise _refuse(f"messages of role {role!r} are not supported by this channel type")
    if not turns or turns[-1]["role"] != "USER":
        raise RelayError(
            400, "the last message must be a user message", type_="invalid_request_error"
        )
    native: Json = {
        "model": model,
        "message": turns[-1]["message"],
        "chat_history": turns[:-1],
        "stream": stream,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if preamble:
        native["preamble"] = "\n\n".join(preamble)
    for name, cohere_name in PARAMETERS.items():
        if body.get(name) is not None:
            native[cohere_name] = body[name]
    stop = body.get("stop")
    if stop:
        native["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    if safety != "NONE":
        native["safety_mode"] = safety
    return native


def openai_usage(meta: Any) -> Json | None:
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    if not isinstance(billed, dict):
        return None
    prompt = billed.get("input_tokens")
    output = billed.get("output_tokens")
    if not isinstance(prompt, int) or not isinstance(output, int):
        return None
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}


def to_completion(response: Json, model: str) -> bytes:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": str(response.get("text") or "")},
        "finish_reason": FINISH.get(str(response.get("finish_reason")), "stop"),
    }
    return completion(
        id_=str(response.get("response_id") or "chatcmpl-" + os.urandom(12).hex()),
        model=model,
        choices=[choice],
        usage=openai_usage(response.get("meta")),
    )


def to_embed(body: Json, model: str) -> Json:
    """An OpenAI embeddings request as Cohere's embed request (documents to be searched)."""
    texts = input_texts(body)
    return {
        "model": model,
        "texts": texts,
        "input_type": "search_document",
        "embedding_types": ["float"],
    }


def to_embeddings(answer: Json, model: str) -> bytes:
    """Cohere's embeddings (by type, or a plain list from older models) in OpenAI's shape,
    its billed input tokens as the usage."""
    vectors = answer.get("embeddings")
    if isinstance(vectors, dict):
        vectors = vectors.get("float")
    data = [
        {"object": "embedding", "index": index, "embedding": vector}
        for index, vector in enumerate(vectors if isinstance(vectors, list) else ())
    ]
    body: Json = {"object": "list", "model": model, "data": data}
    meta = answer.get("meta")
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    tokens = billed.get("input_tokens") if isinstance(billed, dict) else None
    if isinstance(tokens, int) and not isinstance(tokens, bool):
        body["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps(body)


class ChatStream:
    """Cohere's newline-delimited stream events as OpenAI chunks."""

    __slots__ = ("_out", "_pending", "_sent")

    def __init__(self, model: str) -> None:
        self._out = ChunkWriter("chatcmpl-" + os.urandom(12).hex(), model)
        self._pending = b""
        self._sent = False

    def feed(self, data: bytes) -> bytes:
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()
        return b"".join(self._event(line) for line in lines)

    def finish(self) -> bytes:
        rest, self._pending = self._pending, b""
        return self._event(rest)

    def _event(self, line: bytes) -> bytes:
        line = line.strip()
        if line.startswith(b"data:"):  # some deployments frame the same events as SSE
            line = line[5:].strip()
        if not line:
            return b""
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            return b""
        if not isinstance(event, dict):
            return b""
        kind = event.get("event_type")
        if kind is None and isinstance(event.get("message"), str):
            return self._error(event["message"])
        frames = b""
        if not self._sent:
            frames = self._out.delta({"role": "assistant", "content": ""})
            self._sent = True
        if kind == "text-generation" and isinstance(event.get("text"), str):
            return frames + self._out.delta({"content": event["text"]})
        if kind == "stream-end":
            response = event.get("response")
            response = response if isinstance(response, dict) else {}
            reason = str(event.get("finish_reason") or response.get("finish_reason") or "")
            if reason == "ERROR":
                return frames + self._error("the upstream ended the stream with an error")
            frames += self._out.delta({}, FINISH.get(reason, "stop"))
            usage = openai_usage(response.get("meta"))
            return frames + (self._out.usage(usage) if usage is not None else b"")
        return frames

    def _error(self, message: str) -> bytes:
        if not self._sent:
            raise ProviderError(502, message, {"type": "upstream_error", "code": None})
        return error_frame(message, "upstream_error")


class CohereAdaptor(OpenAIAdaptor):
    supports_stream_options = False
    default_base_url = "https://api.cohere.ai"

    def __init__(self, safety: str = "NONE") -> None:
        self.safety = safety if safety in SAFETY_MODES else "NONE"

    def build_request(self, target: Target, body: Outgoing) -> UpstreamRequest:
        only(target.endpoint, CHAT, RERANK, EMBEDDINGS)
        if target.endpoint is RERANK:
            return super().build_request(target, body)
        headers = self.headers(target)
        headers["Content-Type"] = "application/json"
        if target.endpoint is EMBEDDINGS:
            native = to_embed(canonical_body(body), target.model)
            return UpstreamRequest(
                self.base_url(target) + "/v1/embed", headers, orjson.dumps(native)
            )
        native = to_chat(canonical_body(body), target.model, self.safety, target.stream)
        headers["Accept"] = "application/stream+json" if target.stream else "application/json"
        return UpstreamRequest(self.base_url(target) + "/v1/chat", headers, orjson.dumps(native))

    def convert_response(self, target: Target, data: bytes) -> bytes:
        if target.endpoint is RERANK:
            return data
        if target.endpoint is EMBEDDINGS:
            answer = json_object(data)
            return data if answer is None else to_embeddings(answer, target.model)
        response = json_object(data)
        if response is None or "text" not in response:
            return data
        return to_completion(response, target.model)

    def stream_converter(self, target: Target) -> StreamConverter:
        return ChatStream(target.model)

    def parse_error(self, status: int, body: bytes) -> tuple[str, Json | None]:
        return message_error(status, body, ERROR_TYPES)
