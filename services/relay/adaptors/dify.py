"""Dify (37): a Dify app's chat-messages API (upstream `relay/channel/dify`).

The conversation becomes one `query` transcript ("SYSTEM:", "USER:", "ASSISTANT:" turns, as
upstream sends it), `user` is the client's `user` or the request's own id, image URLs become
`files` with `remote_url`. Blocking answers carry `metadata.usage`; streams are SSE events
(`message` / `agent_message` text, `message_end` with the usage, `error`), workflow and node
progress events are skipped. Upstream uploads inline (base64) images to Dify first; here they
are refused with a 400 instead of half-sent. Other endpoints are refused.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from services.relay.adaptors.base import Json, Outgoing, StreamConverter, Target, UpstreamRequest
from services.relay.adaptors.native import (
    ChunkWriter,
    DataLines,
    ProviderError,
    canonical_body,
    completion,
    error_frame,
    json_object,
    message_error,
    message_list,
    only,
)
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.endpoints import CHAT
from services.relay.errors import RelayError

LABELS = {"system": "SYSTEM", "developer": "SYSTEM", "assistant": "ASSISTANT"}
TEXT_EVENTS = frozenset({"message", "agent_message"})


def _parts(content: Any) -> list[Json]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [part for part in content if isinstance(part, dict)] if isinstance(content, list) else []


def _file(part: Json) -> Json:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise RelayError(
            400,
            "images must be http(s) URLs for this channel type",
            type_="invalid_request_error",
            code="unsupported_image",
        )
    return {"type": "image", "transfer_mode": "remote_url", "url": url}


def to_chat_message(body: Json, user: str, stream: bool) -> Json:
    """The OpenAI chat request as a Dify chat-messages request."""
    transcript: list[str] = []
    files: list[Json] = []
    for message in message_list(body):
        label = LABELS.get(str(message.get("role")), "USER")
        for part in _parts(message.get("content")):
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                transcript.append(f"{label}: \n{part['text']}\n")
            elif part.get("type") == "image_url":
                files.append(_file(part))
    client_user = body.get("user")
    return {
        "inputs": {},
        "query": "".join(transcript),
        "response_mode": "streaming" if stream else "blocking",
        "user": client_user if isinstance(client_user, str) and client_user else user,
        "files": files,
        "auto_generate_name": False,
    }


def _usage(metadata: Any) -> Json | None:
    usage = metadata.get("usage") if isinstance(metadata, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt, output = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(output, int):
        return None
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}


class ChatStream:
    """Dify's SSE events as OpenAI chunks."""

    __slots__ = ("_lines", "_out", "_sent")

    def __init__(self, model: str) -> None:
        self._lines = DataLines()
        self._out = ChunkWriter("chatcmpl-" + os.urandom(12).hex(), model)
        self._sent = False

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._event(event) for event in self._lines.feed(data))

    def finish(self) -> bytes:
        return b"".join(self._event(event) for event in self._lines.finish())

    def _event(self, event: Json) -> bytes:
        kind = event.get("event")
        if kind == "error":
            return self._error(event)
        frames = b""
        if not self._sent and kind in TEXT_EVENTS | {"message_end"}:
            frames = self._out.delta({"role": "assistant", "content": ""})
            self._sent = True
        if kind in TEXT_EVENTS and isinstance(event.get("answer"), str):
            return frames + self._out.delta({"content": event["answer"]})
        if kind == "message_end":
            frames += self._out.delta({}, "stop")
            usage = _usage(event.get("metadata"))
            return frames + (self._out.usage(usage) if usage is not None else b"")
        return frames

    def _error(self, event: Json) -> bytes:
        message = str(event.get("message") or "upstream stream error")
        status = event.get("status")
        status = status if isinstance(status, int) and 400 <= status < 600 else 502
        if not self._sent:
            raise ProviderError(
                status, message, {"type": "upstream_error", "code": event.get("code")}
            )
        return error_frame(message, "upstream_error", str(event.get("code") or "") or None)


class DifyAdaptor(OpenAIAdaptor):
    supports_stream_options = False
    default_base_url = "https://api.dify.ai"

    def build_request(self, target: Target, body: Outgoing) -> UpstreamRequest:
        only(target.endpoint, CHAT)
        user = "veloera-" + os.urandom(8).hex()
        native = to_chat_message(canonical_body(body), user, target.stream)
        headers = self.headers(target)
        headers["Content-Type"] = "application/json"
        headers["Accept"] = "text/event-stream" if target.stream else "application/json"
        url = self.base_url(target) + "/v1/chat-messages"
        return UpstreamRequest(url, headers, orjson.dumps(native))

    def convert_response(self, target: Target, data: bytes) -> bytes:
        response = json_object(data)
        if response is None or "answer" not in response:
            return data
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": str(response.get("answer") or "")},
            "finish_reason": "stop",
        }
        return completion(
            id_=str(response.get("message_id") or "chatcmpl-" + os.urandom(12).hex()),
            model=target.model,
            choices=[choice],
            usage=_usage(response.get("metadata")),
        )

    def stream_converter(self, target: Target) -> StreamConverter:
        return ChatStream(target.model)

    def parse_error(self, status: int, body: bytes) -> tuple[str, Json | None]:
        return message_error(status, body)
