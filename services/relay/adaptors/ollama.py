"""Ollama (4): chat on the native `/api/chat`, embeddings on the native `/api/embed` (upstream
`relay/channel/ollama`).

Chat: messages carry over with images as base64 (`data:` URLs; Ollama takes no image URLs) and
tool calls with their arguments as objects; tools pass as they are; temperature, top_p, seed,
the penalties, stop and max_tokens (`num_predict`) go into `options`; a JSON response_format
becomes `format` (the schema, or "json"); a reasoning effort turns `think` on. The answer
(`message.content`, `thinking`, `tool_calls`, `done_reason`, `prompt_eval_count` /
`eval_count`) becomes an OpenAI completion, the newline-delimited JSON stream OpenAI chunks.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from services.relay.adaptors.base import Json, Outgoing, StreamConverter, Target, UpstreamRequest
from services.relay.adaptors.native import (
    Lines,
    ProviderError,
    ProviderStream,
    arguments_of,
    canonical_body,
    completion,
    json_object,
    message_list,
    split_data_url,
    text_of,
)
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.endpoints import CHAT, EMBEDDINGS
from services.relay.errors import RelayError

OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}
FINISH = {"stop": "stop", "length": "length"}


def _message(message: Json) -> Json:
    role = message.get("role")
    native: Json = {"role": "system" if role == "developer" else role}
    content = message.get("content")
    native["content"] = text_of(content)
    images: list[str] = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict) and part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parsed = split_data_url(url) if isinstance(url, str) else None
            if parsed is None:
                raise RelayError(
                    400,
                    "Ollama takes images as data URLs (base64), not links",
                    type_="invalid_request_error",
                    code="unsupported_image",
                )
            images.append(parsed[1])
    if images:
        native["images"] = images
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        native["tool_calls"] = [
            {
                "function": {
                    "name": (call.get("function") or {}).get("name"),
                    "arguments": arguments_of((call.get("function") or {}).get("arguments")),
                }
            }
            for call in calls
            if isinstance(call, dict)
        ]
    return native


def to_chat(body: Json, model: str, stream: bool) -> Json:
    """The OpenAI chat request as Ollama's /api/chat request."""
    native: Json = {
        "model": model,
        "messages": [_message(message) for message in message_list(body)],
        "stream": stream,
    }
    if body.get("tools"):
        native["tools"] = body["tools"]
    options: Json = {
        ollama: body[name] for name, ollama in OPTIONS.items() if body.get(name) is not None
    }
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and limit > 0:
        options["num_predict"] = limit
    stop = body.get("stop")
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else stop
    if options:
        native["options"] = options
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_schema":
            schema = response_format.get("json_schema")
            native["format"] = schema.get("schema") if isinstance(schema, dict) else "json"
        elif response_format.get("type") == "json_object":
            native["format"] = "json"
    if body.get("reasoning_effort"):
        native["think"] = True
    return native


def openai_usage(answer: Json) -> Json | None:
    prompt, output = answer.get("prompt_eval_count"), answer.get("eval_count")
    if not isinstance(prompt, int) or not isinstance(output, int):
        return None
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}


def _calls(message: Json) -> list[Json]:
    calls = []
    for index, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments = function.get("arguments")
        calls.append(
            {
                "index": index,
                "id": "call_" + os.urandom(8).hex(),
                "type": "function",
                "function": {
                    "name": str(function.get("name") or ""),
                    "arguments": arguments
                    if isinstance(arguments, str)
                    else orjson.dumps(arguments or {}).decode(),
                },
            }
        )
    return calls


def _object(holder: Json, name: str) -> Json:
    value = holder.get(name)
    return value if isinstance(value, dict) else {}


def to_completion(answer: Json, model: str) -> bytes:
    message = _object(answer, "message")
    reply: Json = {"role": "assistant", "content": str(message.get("content") or "")}
    if isinstance(message.get("thinking"), str) and message["thinking"]:
        reply["reasoning_content"] = message["thinking"]
    calls = _calls(message)
    if calls:
        reply["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
    finish = "tool_calls" if calls else FINISH.get(str(answer.get("done_reason")), "stop")
    return completion(
        id_="chatcmpl-" + os.urandom(12).hex(),
        model=model,
        choices=[{"index": 0, "message": reply, "finish_reason": finish}],
        usage=openai_usage(answer),
    )


def to_embeddings(answer: Json, model: str) -> bytes:
    vectors: list[Any] = answer["embeddings"]
    prompt = answer.get("prompt_eval_count")
    tokens = prompt if isinstance(prompt, int) else 0
    return orjson.dumps(
        {
            "object": "list",
            "model": answer.get("model", model),
            "data": [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


class ChatStream(ProviderStream):
    """Ollama's newline-delimited JSON stream as OpenAI chunks; the last line (`done`)
    carries the finish reason and the counts."""

    __slots__ = ("_calls", "_lines")

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self._calls = 0
        self._lines = Lines()

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._line(line) for line in self._lines.feed(data))

    def finish(self) -> bytes:
        return self._line(self._lines.rest())

    def _line(self, line: bytes) -> bytes:
        answer = json_object(line) if line.strip() else None
        if answer is None:
            return b""
        if isinstance(answer.get("error"), str):
            return self.failed(ProviderError(502, answer["error"], {"type": "upstream_error"}))
        frames = self.opening()
        message = _object(answer, "message")
        if isinstance(message.get("thinking"), str) and message["thinking"]:
            frames += self._out.delta({"reasoning_content": message["thinking"]})
        if isinstance(message.get("content"), str) and message["content"]:
            frames += self._out.delta({"content": message["content"]})
        for call in _calls(message):
            call["index"] = self._calls
            self._calls += 1
            frames += self._out.delta({"tool_calls": [call]})
        if answer.get("done") is True:
            reason = (
                "tool_calls" if self._calls else FINISH.get(str(answer.get("done_reason")), "stop")
            )
            frames += self._out.delta({}, reason)
            usage = openai_usage(answer)
            if usage is not None:
                frames += self._out.usage(usage)
        return frames


class OllamaAdaptor(OpenAIAdaptor):
    supports_stream_options = False
    default_base_url = "http://localhost:11434"

    def build_request(self, target: Target, body: Outgoing) -> UpstreamRequest:
        if target.endpoint is not EMBEDDINGS and target.endpoint is not CHAT:
            return super().build_request(target, body)  # the rest of Ollama's OpenAI API
        canonical = canonical_body(body)
        if target.endpoint is EMBEDDINGS:
            native: Json = {"model": target.model, "input": canonical.get("input")}
            if isinstance(canonical.get("dimensions"), int):
                native["dimensions"] = canonical["dimensions"]
            path = "/api/embed"
        else:
            native, path = to_chat(canonical, target.model, target.stream), "/api/chat"
        headers = self.headers(target)
        headers["Content-Type"] = "application/json"
        return UpstreamRequest(self.base_url(target) + path, headers, orjson.dumps(native))

    def convert_response(self, target: Target, data: bytes) -> bytes:
        answer = json_object(data)
        if answer is None:
            return data
        if target.endpoint is EMBEDDINGS:
            if not isinstance(answer.get("embeddings"), list):
                return data
            return to_embeddings(answer, target.model)
        if target.endpoint is CHAT and "message" in answer:
            return to_completion(answer, target.model)
        return data

    def stream_converter(self, target: Target) -> StreamConverter | None:
        return ChatStream(target.model) if target.endpoint is CHAT else None
