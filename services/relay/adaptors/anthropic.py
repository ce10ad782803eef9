"""Anthropic Claude (14): the Messages API (`POST /v1/messages`).

The canonical OpenAI chat request becomes a Messages request (system split out, max_tokens
always set, tools and tool results, images, stop sequences, a `-thinking` model suffix as
extended thinking); the Message answer and its event stream (message_start, content_block_*,
message_delta, message_stop, ping, error) become an OpenAI completion and chunks, usage with
cache reads and writes included. Mirrors upstream `relay/channel/claude/relay-claude.go` and
`adaptor.go`; the wire format follows Anthropic's Messages API reference.
"""

from __future__ import annotations

from typing import Any

import orjson

from services.relay.adaptors.base import (
    Json,
    Outgoing,
    StreamAccumulator,
    StreamConverter,
    Target,
    UpstreamRequest,
    UsageCounts,
)
from services.relay.adaptors.counts import CountReader
from services.relay.adaptors.native import (
    ChunkWriter,
    DataLines,
    ProviderError,
    add_turn,
    arguments_of,
    canonical_body,
    completion,
    error_frame,
    functions_of,
    only,
    split_data_url,
    text_of,
)
from services.relay.adaptors.openai import OpenAIAdaptor, usage_from
from services.relay.endpoints import CHAT
from services.relay.options import DEFAULT_PROVIDER_OPTIONS, ProviderOptions

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 8192  # `claude.default_max_tokens`
THINKING_SUFFIX = "-thinking"
THINKING_MIN_MAX_TOKENS = 1280
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
TOOL_CHOICES: dict[str, Json] = {
    "auto": {"type": "auto"},
    "required": {"type": "any"},
    "none": {"type": "none"},
}
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


# ---------------------------------------------------------------------- request


def _image_block(part: Json) -> Json | None:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        return None
    inline = split_data_url(url)
    if inline is not None:
        media, data = inline
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _content_blocks(content: Any) -> list[Json]:
    """OpenAI message content as Anthropic blocks (text and images; other parts dropped)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[Json] = []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str) and part["text"]:
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            block = _image_block(part)
            if block is not None:
                blocks.append(block)
    return blocks


def _assistant_blocks(message: Json) -> list[Json]:
    blocks = _content_blocks(message.get("content"))
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        blocks.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or ""),
                "name": function["name"],
                "input": arguments_of(function.get("arguments")),
            }
        )
    return blocks


def _tool_result(message: Json) -> Json:
    content = message.get("content")
    blocks = _content_blocks(content)
    result: Json = {"type": "tool_result", "tool_use_id": str(message.get("tool_call_id") or "")}
    if any(block["type"] == "image" for block in blocks):
        result["content"] = blocks
    else:
        result["content"] = text_of(content)
    return result


def _messages(messages: Any) -> tuple[list[Json], list[Json]]:
    """(system blocks, messages): system and developer messages go to `system`; tool results
    become user turns; consecutive turns of one role are merged, as the API wants them."""
    system: list[Json] = []
    out: list[Json] = []
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            text = text_of(message.get("content"))
            if text:
                system.append({"type": "text", "text": text})
            continue
        if role == "tool":
            role, blocks = "user", [_tool_result(message)]
        elif role == "assistant":
            blocks = _assistant_blocks(message)
        else:
            role, blocks = "user", _content_blocks(message.get("content"))
        add_turn(out, role, "content", blocks)
    return system, out


def _tools(tools: Any) -> list[Json]:
    out: list[Json] = []
    for function in functions_of(tools):
        schema = function.get("parameters")
        item: Json = {
            "name": function["name"],
            "input_schema": schema
            if isinstance(schema, dict)
            else {"type": "object", "properties": {}},
        }
        if isinstance(function.get("description"), str):
            item["description"] = function["description"]
        out.append(item)
    return out


def _tool_choice(choice: Any, parallel: Any) -> Json | None:
    picked: Json | None = None
    if isinstance(choice, str):
        known = TOOL_CHOICES.get(choice)
        picked = dict(known) if known is not None else None
    elif isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name:
            picked = {"type": "tool", "name": name}
    if parallel is False:
        picked = picked or {"type": "auto"}
        if picked["type"] != "none":
            picked["disable_parallel_tool_use"] = True
    return picked


def _max_tokens(body: Json, model: str, providers: ProviderOptions) -> int:
    """The request's max_tokens, else `claude.default_max_tokens` for the model or its
    "default", else 8192 (Anthropic requires one)."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    defaults = providers.claude_max_tokens
    return defaults.get(model) or defaults.get("default") or DEFAULT_MAX_TOKENS


def to_messages(
    body: Json, model: str, providers: ProviderOptions = DEFAULT_PROVIDER_OPTIONS
) -> Json:
    """The Messages request for a canonical chat request."""
    system, messages = _messages(body.get("messages"))
    native: Json = {
        "model": model,
        "messages": messages,
        "max_tokens": _max_tokens(body, model, providers),
    }
    if system:
        native["system"] = system
    for name in ("temperature", "top_p", "top_k"):
        value = body.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            native[name] = value
    stop = body.get("stop")
    if isinstance(stop, str) and stop:
        native["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        native["stop_sequences"] = [s for s in stop if isinstance(s, str)]
    tools = _tools(body.get("tools"))
    if tools:
        native["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            native["tool_choice"] = choice
    user = body.get("user")
    if isinstance(user, str) and user:
        native["metadata"] = {"user_id": user}
    if body.get("stream") is True:
        native["stream"] = True
    if providers.claude_thinking and model.endswith(THINKING_SUFFIX):
        _think(native, model, providers.claude_thinking_share)
    return native


def _think(native: Json, model: str, share: float) -> None:
    """The `-thinking` suffix (`claude.thinking_adapter_enabled`): extended thinking on a
    budget of `share` (80%) of max_tokens; Anthropic wants temperature 1 and no top_p then."""
    native["model"] = model.removesuffix(THINKING_SUFFIX)
    native["max_tokens"] = max(native["max_tokens"], THINKING_MIN_MAX_TOKENS)
    budget = int(native["max_tokens"] * share)
    native["thinking"] = {"type": "enabled", "budget_tokens": budget}
    native["temperature"] = 1.0
    native.pop("top_p", None)
    native.pop("top_k", None)


# ---------------------------------------------------------------------- response


def openai_usage(usage: Any) -> Json | None:
    """Anthropic usage in OpenAI's shape: every prompt token (input, cache reads, cache
    writes) in prompt_tokens, reads as cached_tokens and writes as cached_creation_tokens (the
    field upstream's OpenAI usage carries them in)."""
    if not isinstance(usage, dict):
        return None
    reader = CountReader()
    fresh = reader.count(usage, "input_tokens")
    read = reader.count(usage, "cache_read_input_tokens")
    written = reader.count(usage, "cache_creation_input_tokens")
    output = reader.count(usage, "output_tokens")
    prompt = fresh + read + written
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": read, "cached_creation_tokens": written},
    }


def usage_counts(raw: Any) -> UsageCounts | None:
    """The billed usage of an OpenAI usage block this adaptor wrote: cache writes are billed
    apart (at their own ratio), on top of the prompt that includes cache reads."""
    usage = usage_from(raw)
    if usage is None or not isinstance(raw, dict):
        return usage
    details = raw.get("prompt_tokens_details")
    if isinstance(details, dict):
        reader = CountReader()
        written = min(reader.count(details, "cached_creation_tokens"), usage.prompt_tokens)
        usage.cache_creation_tokens = written
        usage.prompt_tokens -= written
        usage.clamped |= reader.clamped
    return usage


def to_completion(message: Json, model: str) -> bytes:
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[Json] = []
    content = message.get("content")
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif kind == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id") or ""),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name") or ""),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    reply: Json = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thinking:
        reply["reasoning_content"] = "".join(thinking)
    if calls:
        reply["tool_calls"] = calls
    stop = message.get("stop_reason")
    return completion(
        id_=str(message.get("id") or ""),
        model=str(message.get("model") or model),
        choices=[
            {
                "index": 0,
                "message": reply,
                "finish_reason": FINISH_REASONS.get(stop, "stop")
                if isinstance(stop, str)
                else None,
            }
        ],
        usage=openai_usage(message.get("usage")),
    )


class MessageStream:
    """Anthropic's event stream as OpenAI chunks: text and thinking deltas, tool calls with
    their arguments streamed piece by piece, the finish reason, then one usage chunk."""

    __slots__ = ("_lines", "_out", "_sent", "_tools", "_usage")

    def __init__(self, model: str) -> None:
        self._lines = DataLines()
        self._out = ChunkWriter("", model)
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self._usage: Json = {}
        self._sent = False  # some chunk went out (an error event is then an in-stream error)

    def feed(self, data: bytes) -> bytes:
        return b"".join(self.event(event) for event in self._lines.feed(data))

    def finish(self) -> bytes:
        return b"".join(self.event(event) for event in self._lines.finish())

    def event(self, event: Json) -> bytes:
        """Frames for one event (Bedrock delivers the same events in its own framing)."""
        kind = event.get("type")
        frame = b""
        if kind == "message_start":
            frame = self._start(event.get("message"))
        elif kind == "content_block_start":
            frame = self._block_start(event)
        elif kind == "content_block_delta":
            frame = self._block_delta(event)
        elif kind == "message_delta":
            frame = self._message_delta(event)
        elif kind == "message_stop":
            usage = openai_usage(self._usage)
            frame = self._out.usage(usage) if usage is not None else b""
        elif kind == "error":
            frame = self._error(event.get("error"))
        if frame:
            self._sent = True
        return frame

    def _start(self, message: Any) -> bytes:
        if not isinstance(message, dict):
            return b""
        self._out.id = str(message.get("id") or "")
        if isinstance(message.get("model"), str):
            self._out.model = message["model"]
        if isinstance(message.get("usage"), dict):
            self._usage.update(message["usage"])
        return self._out.delta({"role": "assistant", "content": ""})

    def _block_start(self, event: Json) -> bytes:
        block = event.get("content_block")
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            return b""
        index = len(self._tools)
        self._tools[_int(event.get("index"))] = index
        call = {
            "index": index,
            "id": str(block.get("id") or ""),
            "type": "function",
            "function": {"name": str(block.get("name") or ""), "arguments": ""},
        }
        return self._out.delta({"tool_calls": [call]})

    def _block_delta(self, event: Json) -> bytes:
        delta = event.get("delta")
        if not isinstance(delta, dict):
            return b""
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            return self._out.delta({"content": delta["text"]})
        if kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
            return self._out.delta({"reasoning_content": delta["thinking"]})
        if kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            index = self._tools.get(_int(event.get("index")))
            if index is None or not delta["partial_json"]:
                return b""
            call = {"index": index, "function": {"arguments": delta["partial_json"]}}
            return self._out.delta({"tool_calls": [call]})
        return b""  # signature_delta and future kinds

    def _message_delta(self, event: Json) -> bytes:
        usage = event.get("usage")
        if isinstance(usage, dict):  # cumulative counts: the latest wins
            self._usage.update({k: v for k, v in usage.items() if v is not None})
        delta = event.get("delta")
        stop = delta.get("stop_reason") if isinstance(delta, dict) else None
        if not isinstance(stop, str):
            return b""
        return self._out.delta({}, FINISH_REASONS.get(stop, "stop"))

    def _error(self, error: Any) -> bytes:
        error = error if isinstance(error, dict) else {}
        type_ = str(error.get("type") or "api_error")
        message = str(error.get("message") or "upstream stream error")
        return self.fail(ERROR_STATUS.get(type_, 500), message, type_)

    def fail(self, status: int, message: str, type_: str) -> bytes:
        """An error event: the attempt fails when nothing was relayed yet, else an error
        chunk ends what the client sees."""
        if not self._sent:
            raise ProviderError(status, message, {"type": type_})
        return error_frame(message, type_)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


class AnthropicAdaptor(OpenAIAdaptor):
    supports_stream_options = False
    native_format = "anthropic"  # /v1/messages passes through (ingress/anthropic.py)
    default_base_url = "https://api.anthropic.com"

    def url(self, target: Target) -> str:
        if target.channel.base_url.endswith("/"):
            # A base URL ending with `/` already names the API root (upstream `relay/channel/
            # claude/adaptor.go`).
            return self.base_url(target) + "/messages"
        return self.base_url(target) + "/v1/messages"

    def headers(self, target: Target) -> dict[str, str]:
        return {"x-api-key": target.key, "anthropic-version": API_VERSION}

    def build_request(self, target: Target, body: Outgoing) -> UpstreamRequest:
        only(target.endpoint, CHAT)
        if target.native:  # the client's own Messages body: only the model changes
            native = {**canonical_body(body), "model": target.model}
        else:
            native = to_messages(canonical_body(body), target.model, target.providers)
        # `claude.model_headers_settings` (e.g. anthropic-beta flags), then the client's
        # anthropic-beta flags added to them; never the key's headers.
        headers = dict(target.providers.claude_headers.get(native["model"], {}))
        for name, value in target.native_headers.items():
            have = headers.get(name)
            headers[name] = f"{have},{value}" if have else value
        headers.update(self.headers(target))
        headers["Content-Type"] = "application/json"
        headers["Accept"] = "text/event-stream" if target.stream else "application/json"
        native["stream"] = target.stream
        if not target.stream:
            native.pop("stream")
        return UpstreamRequest(self.url(target), headers, orjson.dumps(native))

    def convert_response(self, target: Target, data: bytes) -> bytes:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return data
        if not isinstance(message, dict) or message.get("type") != "message":
            return data
        return to_completion(message, target.model)

    def stream_converter(self, target: Target) -> StreamConverter:
        return MessageStream(target.model)

    def parse_usage(self, payload: Json) -> UsageCounts | None:
        return usage_counts(payload.get("usage"))

    def accumulate_chunk(self, chunk: Json, acc: StreamAccumulator) -> bool:
        usage_only = super().accumulate_chunk(chunk, acc)
        if usage_only:
            acc.usage = usage_counts(chunk.get("usage"))
        return usage_only
