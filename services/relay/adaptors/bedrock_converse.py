"""AWS Bedrock's Converse API (33) for the models that are not Claude (Llama, Mistral, Nova,
DeepSeek, ... by their Bedrock ids): one request and answer shape for every vendor
(upstream `relay/channel/aws` serves Claude only).

The OpenAI chat request becomes `{messages, system, inferenceConfig, toolConfig}`: text and
base64 images (`data:` URLs; other image URLs are a 400, Converse takes bytes only), tool calls
as `toolUse` blocks and tool results as `toolResult` blocks in the next user turn. The answer's
`output.message.content` (text, `toolUse`, `reasoningContent`), `stopReason` and `usage`
(input, output, cache reads and writes) become an OpenAI completion; `/converse-stream` arrives
in AWS's event-stream framing (messageStart, contentBlockStart / Delta / Stop, messageStop,
metadata with the usage), decoded by botocore.
"""

from __future__ import annotations

import os
from typing import Any, cast

import orjson
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError

from services.relay.adaptors import anthropic
from services.relay.adaptors.base import Json
from services.relay.adaptors.native import (
    ChunkWriter,
    ProviderError,
    add_turn,
    arguments_of,
    completion,
    error_frame,
    functions_of,
    message_list,
    split_data_url,
    text_of,
)
from services.relay.errors import RelayError

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}


def _refuse(message: str) -> RelayError:
    return RelayError(400, message, type_="invalid_request_error", code="unsupported_parameter")


def _content(content: Any) -> list[Json]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[Json] = []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            blocks.append({"text": part["text"]})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parsed = split_data_url(url) if isinstance(url, str) else None
            kind = IMAGE_FORMATS.get(parsed[0]) if parsed else None
            if parsed is None or kind is None:
                raise _refuse("Bedrock's Converse API takes images as png/jpeg/gif/webp data URLs")
            blocks.append({"image": {"format": kind, "source": {"bytes": parsed[1]}}})
    return blocks


def _turns(body: Json) -> tuple[list[Json], list[Json]]:
    """(system blocks, messages): consecutive turns of one role merged (Converse alternates)."""
    system: list[Json] = []
    messages: list[Json] = []

    for message in message_list(body):
        role = message.get("role")
        if role in ("system", "developer"):
            text = text_of(message.get("content"))
            if text:
                system.append({"text": text})
        elif role == "user":
            add_turn(messages, "user", "content", _content(message.get("content")))
        elif role == "assistant":
            blocks = _content(message.get("content"))
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    use = {
                        "toolUseId": str(call.get("id") or ""),
                        "name": str(function.get("name") or ""),
                        "input": arguments_of(function.get("arguments")),
                    }
                    blocks.append({"toolUse": use})
            add_turn(messages, "assistant", "content", blocks)
        elif role == "tool":
            result = {
                "toolUseId": str(message.get("tool_call_id") or ""),
                "content": [{"text": text_of(message.get("content"))}],
            }
            add_turn(messages, "user", "content", [{"toolResult": result}])
        else:
            raise _refuse(f"messages of role {role!r} are not supported by this channel type")
    return system, messages


def _tool_config(body: Json) -> Json | None:
    tools = []
    for function in functions_of(body.get("tools")):
        spec: Json = {
            "name": function["name"],
            "inputSchema": {"json": function.get("parameters") or {"type": "object"}},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        tools.append({"toolSpec": spec})
    if not tools:
        return None
    config: Json = {"tools": tools}
    choice = body.get("tool_choice")
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        config["toolChoice"] = {"tool": {"name": choice["function"].get("name")}}
    return config


def to_converse(body: Json) -> Json:
    """The OpenAI chat request as a Converse request (the model id goes in the URL)."""
    system, messages = _turns(body)
    if not messages or messages[0]["role"] != "user":
        raise RelayError(
            400, "the first message must be a user message", type_="invalid_request_error"
        )
    native: Json = {"messages": messages}
    if system:
        native["system"] = system
    config: Json = {}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and limit > 0:
        config["maxTokens"] = limit
    for name, converse_name in (("temperature", "temperature"), ("top_p", "topP")):
        if isinstance(body.get(name), int | float):
            config[converse_name] = body[name]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else stop
    if config:
        native["inferenceConfig"] = config
    tools = _tool_config(body)
    if tools is not None:
        native["toolConfig"] = tools
    return native


def openai_usage(usage: Any) -> Json | None:
    if not isinstance(usage, dict):
        return None
    return anthropic.openai_usage(
        {
            "input_tokens": usage.get("inputTokens"),
            "output_tokens": usage.get("outputTokens"),
            "cache_read_input_tokens": usage.get("cacheReadInputTokens", 0),
            "cache_creation_input_tokens": usage.get("cacheWriteInputTokens", 0),
        }
    )


def to_completion(response: Json, model: str) -> bytes:
    output = response.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    blocks = message.get("content") if isinstance(message, dict) else None
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[Json] = []
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        use = block.get("toolUse")
        if isinstance(use, dict):
            arguments = orjson.dumps(use.get("input") or {}).decode()
            calls.append(
                {
                    "id": str(use.get("toolUseId") or "call_" + os.urandom(8).hex()),
                    "type": "function",
                    "function": {"name": str(use.get("name") or ""), "arguments": arguments},
                }
            )
        thought = block.get("reasoningContent")
        text = thought.get("reasoningText") if isinstance(thought, dict) else None
        if isinstance(text, dict) and isinstance(text.get("text"), str):
            reasoning.append(text["text"])
    reply: Json = {"role": "assistant", "content": "".join(texts)}
    if calls:
        reply["tool_calls"] = calls
    if reasoning:
        reply["reasoning_content"] = "".join(reasoning)
    finish = FINISH.get(str(response.get("stopReason")), "stop")
    return completion(
        id_="chatcmpl-" + os.urandom(12).hex(),
        model=model,
        choices=[{"index": 0, "message": reply, "finish_reason": finish}],
        usage=openai_usage(response.get("usage")),
    )


class ConverseStream:
    """ConverseStream's event-stream frames as OpenAI chunks."""

    __slots__ = ("_buffer", "_calls", "_out", "_sent", "_statuses", "_types")

    def __init__(self, model: str, statuses: dict[str, int], types: dict[int, str]) -> None:
        self._buffer = EventStreamBuffer()
        self._out = ChunkWriter("chatcmpl-" + os.urandom(12).hex(), model)
        self._calls: dict[int, int] = {}  # content block index -> tool call index
        self._sent = False
        self._statuses = statuses  # exception name -> HTTP status
        self._types = types  # HTTP status -> OpenAI error type

    def feed(self, data: bytes) -> bytes:
        self._buffer.add_data(data)
        frames: list[bytes] = []
        try:
            for message in self._buffer:
                frames.append(self._frame(message))
        except ParserError:
            frames.append(self._fail(502, "a malformed event stream frame", "api_error"))
        return b"".join(frames)

    def finish(self) -> bytes:
        return b""

    def _fail(self, status: int, message: str, type_: str) -> bytes:
        if not self._sent:
            raise ProviderError(status, message, {"type": type_})
        return error_frame(message, type_)

    def _frame(self, message: EventStreamMessage) -> bytes:
        headers = cast("dict[str, Any]", message.headers)  # botocore-stubs say int: a dict
        try:
            event = orjson.loads(message.payload) if message.payload else {}
        except orjson.JSONDecodeError:
            event = {}
        event = event if isinstance(event, dict) else {}
        if headers.get(":message-type") in ("exception", "error"):
            name = str(headers.get(":exception-type") or headers.get(":error-code") or "")
            status = self._statuses.get(name, 500)
            text = str(event.get("message") or name or "upstream stream error")
            return self._fail(status, text, self._types.get(status, name or "upstream_error"))
        frame = self._event(str(headers.get(":event-type") or ""), event)
        if frame:
            self._sent = True
        return frame

    def _event(self, kind: str, event: Json) -> bytes:
        if kind == "messageStart":
            return self._out.delta({"role": "assistant", "content": ""})
        index = event.get("contentBlockIndex", 0)
        if kind == "contentBlockStart":
            start = event.get("start")
            use = start.get("toolUse") if isinstance(start, dict) else None
            if not isinstance(use, dict):
                return b""
            position = self._calls.setdefault(index, len(self._calls))
            call = {
                "index": position,
                "id": str(use.get("toolUseId") or ""),
                "type": "function",
                "function": {"name": str(use.get("name") or ""), "arguments": ""},
            }
            return self._out.delta({"tool_calls": [call]})
        if kind == "contentBlockDelta":
            delta = event.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            if isinstance(delta.get("text"), str):
                return self._out.delta({"content": delta["text"]})
            use = delta.get("toolUse")
            if isinstance(use, dict) and isinstance(use.get("input"), str):
                position = self._calls.setdefault(index, len(self._calls))
                piece = {"index": position, "function": {"arguments": use["input"]}}
                return self._out.delta({"tool_calls": [piece]})
            thought = delta.get("reasoningContent")
            if isinstance(thought, dict) and isinstance(thought.get("text"), str):
                return self._out.delta({"reasoning_content": thought["text"]})
            return b""
        if kind == "messageStop":
            return self._out.delta({}, FINISH.get(str(event.get("stopReason")), "stop"))
        if kind == "metadata":
            usage = openai_usage(event.get("usage"))
            return self._out.usage(usage) if usage is not None else b""
        return b""
