"""Anthropic Messages (`/v1/messages`) over any OpenAI-compatible channel.

The request becomes an OpenAI chat request (system prompts, text / image / document blocks,
tools and tool_choice, tool_use and tool_result turns, stop_sequences, max_tokens, temperature,
top_p, metadata.user_id, thinking and output_config.effort as a reasoning effort,
output_config.format as response_format); the chat answer goes back as an
Anthropic message, and a chat stream as Anthropic's event sequence (message_start, ping,
content_block_start / delta / stop, message_delta, message_stop). Mirrors upstream Veloera's
`service/convert.go` (Claude <-> OpenAI) and `relay/claude_handler.go`; the wire format follows
Anthropic's Messages API reference.
"""

from __future__ import annotations

import hashlib
import os
from functools import partial
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from services.relay.adaptors.base import Json, UsageCounts
from services.relay.endpoints import CHAT
from services.relay.errors import REQUEST_ID_HEADER, RelayError
from services.relay.incoming import (
    MAX_TOKENS_LIMIT,
    ClientRequest,
    Passthrough,
    bad_request,
    parse_json_body,
)
from services.relay.ingress import Ingress, call_deltas, first_choice, reply_text

PING_FRAME = b'event: ping\ndata: {"type": "ping"}\n\n'
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
# Thinking budgets up to these many tokens map to the effort (more: "high").
EFFORT_BUDGETS = ((4096, "low"), (16384, "medium"))
EFFORTS = {"low": "low", "medium": "medium"}  # xhigh and max: OpenAI's highest is "high"
THINKING_ON = ("enabled", "adaptive", "between_tools")
MAX_USER = 64
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


# ---------------------------------------------------------------------- errors


def error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status."""
    known = ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(status: int, message: str, request_id: str) -> bytes:
    suffix = f" (request id: {request_id})" if request_id else ""
    error = {"type": error_type(status), "message": message + suffix}
    return orjson.dumps({"type": "error", "error": error})


def error_answer(
    status: int, message: str, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    merged = {REQUEST_ID_HEADER: request_id, **(headers or {})} if request_id else headers
    return Response(
        error_body(status, message, request_id),
        status_code=status,
        headers=merged,
        media_type="application/json",
    )


def error_response(err: RelayError, request_id: str) -> Response:
    """A relay error (auth, quota, routing, bad input) in Anthropic's shape."""
    return error_answer(err.status, err.message, request_id)


# ---------------------------------------------------------------------- request


def _text_of(blocks: list[Any], where: str) -> str:
    """The text blocks of a system prompt or tool result, one per line."""
    texts: list[str] = []
    for block in blocks:
        if not isinstance(block, dict):
            raise bad_request(f"{where} blocks must be objects", where)
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
    return "\n".join(texts)


def _image_part(block: Json) -> Json:
    source = block.get("source")
    if not isinstance(source, dict):
        raise bad_request("image.source is required", "messages")
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str):
            raise bad_request("a base64 image needs media_type and data", "messages")
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if kind == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise bad_request("image.source must be base64 or url", "messages")


def _document_part(block: Json) -> Json | None:
    source = block.get("source")
    if not isinstance(source, dict):
        raise bad_request("document.source is required", "messages")
    kind = source.get("type")
    if kind == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    if kind == "base64" and isinstance(source.get("data"), str):
        media = source.get("media_type") or "application/pdf"
        title = block.get("title")
        return {
            "type": "file",
            "file": {
                "filename": title if isinstance(title, str) and title else "document.pdf",
                "file_data": f"data:{media};base64,{source['data']}",
            },
        }
    if kind == "url" and isinstance(source.get("url"), str):
        return {"type": "text", "text": source["url"]}
    return None


def _tool_message(block: Json, images: list[Json]) -> Json:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise bad_request("tool_result.tool_use_id is required", "messages")
    content = block.get("content")
    if isinstance(content, list):
        images.extend(
            _image_part(part)
            for part in content
            if isinstance(part, dict) and part.get("type") == "image"
        )
        text = _text_of(content, "tool_result")
    else:
        text = content if isinstance(content, str) else ""
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _user_messages(blocks: list[Any]) -> list[Json]:
    """Tool results first (as `tool` messages, which must follow the assistant's calls), then
    the user's own parts."""
    tools: list[Json] = []
    parts: list[Json] = []
    for block in blocks:
        if not isinstance(block, dict):
            raise bad_request("content blocks must be objects", "messages")
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise bad_request("text blocks need a text string", "messages")
            parts.append({"type": "text", "text": text})
        elif kind == "image":
            parts.append(_image_part(block))
        elif kind == "tool_result":
            tools.append(_tool_message(block, parts))
        elif kind == "document":
            part = _document_part(block)
            if part is not None:
                parts.append(part)
    if not parts:
        return tools
    if all(part["type"] == "text" for part in parts):
        return [*tools, {"role": "user", "content": "\n".join(p["text"] for p in parts)}]
    return [*tools, {"role": "user", "content": parts}]


def _assistant_message(blocks: list[Any]) -> Json:
    texts: list[str] = []
    calls: list[Json] = []
    for block in blocks:
        if not isinstance(block, dict):
            raise bad_request("content blocks must be objects", "messages")
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            name = block.get("name")
            if not isinstance(name, str) or not name:
                raise bad_request("tool_use.name is required", "messages")
            call_id = block.get("id")
            calls.append(
                {
                    "id": call_id if isinstance(call_id, str) and call_id else _new_id("toolu_"),
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        # thinking / redacted_thinking blocks carry Anthropic signatures: no OpenAI twin.
    message: Json = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _messages(system: Any, messages: Any) -> list[Json]:
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty array", "messages")
    out: list[Json] = []
    if isinstance(system, list):
        system = _text_of(system, "system")
    elif system is not None and not isinstance(system, str):
        raise bad_request("system must be a string or an array of text blocks", "system")
    if system:
        out.append({"role": "system", "content": system})
    for message in messages:
        if not isinstance(message, dict):
            raise bad_request("each message must be an object", "messages")
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant"):
            raise bad_request("message role must be user or assistant", "messages")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif not isinstance(content, list):
            raise bad_request("message content must be a string or an array", "messages")
        elif role == "assistant":
            out.append(_assistant_message(content))
        else:
            out.extend(_user_messages(content))
    return out


def _tools(tools: Any) -> list[Json]:
    """Custom tools as functions; Anthropic's server tools (web search, bash…) have no OpenAI
    twin and are left out."""
    if not isinstance(tools, list):
        raise bad_request("tools must be an array", "tools")
    out: list[Json] = []
    for tool in tools:
        if not isinstance(tool, dict):
            raise bad_request("each tool must be an object", "tools")
        if tool.get("type") not in (None, "custom"):
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("tool.name is required", "tools")
        schema = tool.get("input_schema")
        function: Json = {
            "name": name,
            "parameters": schema if isinstance(schema, dict) else {"type": "object"},
        }
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, body: Json) -> None:
    if not isinstance(choice, dict):
        raise bad_request("tool_choice must be an object", "tool_choice")
    kind = choice.get("type")
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("tool_choice.name is required", "tool_choice")
        body["tool_choice"] = {"type": "function", "function": {"name": name}}
    elif isinstance(kind, str) and kind in TOOL_CHOICES:
        body["tool_choice"] = TOOL_CHOICES[kind]
    else:
        raise bad_request("tool_choice.type must be auto, any, tool or none", "tool_choice")
    if choice.get("disable_parallel_tool_use") is True:
        body["parallel_tool_calls"] = False


def thinking_on(thinking: Any) -> bool:
    return isinstance(thinking, dict) and thinking.get("type") in THINKING_ON


def reasoning_effort(body: Json) -> str:
    """The reasoning effort asked for: `output_config.effort`, else from `thinking`'s budget
    ("" when neither asks)."""
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if isinstance(effort, str) and effort:
        return EFFORTS.get(effort, "high")
    thinking = body.get("thinking")
    if not thinking_on(thinking):
        return ""
    assert isinstance(thinking, dict)
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        return "medium"
    for limit, effort in EFFORT_BUDGETS:
        if budget <= limit:
            return effort
    return "high"


def _max_tokens(body: Json) -> int:
    value = body.get("max_tokens")
    if value is None:
        raise bad_request("max_tokens: Field required", "max_tokens")
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request("max_tokens must be an integer", "max_tokens")
    if value < 1 or value >= MAX_TOKENS_LIMIT:
        raise bad_request("max_tokens is invalid", "max_tokens")
    return value


def _stop_sequences(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise bad_request("stop_sequences must be an array of strings", "stop_sequences")
    return value


def end_user(user_id: str) -> str:
    """OpenAI's `user` takes at most 64 characters; longer ids (Claude Code's carry account and
    session) go as their SHA-256, still one stable id per end user."""
    if len(user_id) <= MAX_USER:
        return user_id
    return hashlib.sha256(user_id.encode()).hexdigest()


def _output_format(config: Any, chat: Json) -> None:
    """Structured outputs: `output_config.format` (a JSON schema) as OpenAI's response_format."""
    form = config.get("format") if isinstance(config, dict) else None
    if isinstance(form, dict) and form.get("type") == "json_schema":
        schema = form.get("schema")
        if not isinstance(schema, dict):
            raise bad_request("output_config.format.schema must be an object", "output_config")
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema},
        }


def to_chat(body: Json, *, count_only: bool = False) -> Json:
    """The OpenAI chat request for an Anthropic Messages request (`count_only`: a
    count_tokens body, which has no max_tokens)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model is required", "model")
    chat: Json = {"model": model, "messages": _messages(body.get("system"), body.get("messages"))}
    if not count_only:
        chat["max_tokens"] = _max_tokens(body)
    if body.get("tools") is not None:
        tools = _tools(body["tools"])
        if tools:
            chat["tools"] = tools
    if body.get("tool_choice") is not None and chat.get("tools"):
        _tool_choice(body["tool_choice"], chat)
    stops = _stop_sequences(body.get("stop_sequences"))
    if stops:
        chat["stop"] = stops
    for name in ("temperature", "top_p"):  # top_k has no OpenAI twin
        value = body.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            chat[name] = value
    _output_format(body.get("output_config"), chat)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = end_user(metadata["user_id"])
    if body.get("stream") is True and not count_only:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # usage for message_delta
    return chat


def parse(raw: bytes, beta: str = "") -> ClientRequest:
    """A `/v1/messages` body as the canonical chat request, with its way back attached, and
    the body itself for Anthropic channels (`beta`: the client's anthropic-beta header)."""
    body = parse_json_body(raw)
    chat = to_chat(body)
    effort = reasoning_effort(body)
    egress = AnthropicEgress(
        model=chat["model"],
        thinking=thinking_on(body.get("thinking")),
        stop_sequences=chat.get("stop", []),
    )
    return ClientRequest(
        endpoint=CHAT,
        model=chat["model"],
        raw=orjson.dumps(chat),  # what pass-through sends: the canonical body
        payload=chat,
        stream=chat.get("stream") is True,
        max_tokens=chat["max_tokens"],
        reasoning_effort=effort,
        egress=egress,
        passthrough=Passthrough("anthropic", body, {"anthropic-beta": beta} if beta else {}),
    )


def prepend_system(body: Json, prompt: str) -> None:
    """A channel's system prompt before the client's own (a passed-through body)."""
    system = body.get("system")
    if isinstance(system, list):
        body["system"] = [{"type": "text", "text": prompt}, *system]
    else:
        given = system if isinstance(system, str) else ""
        body["system"] = f"{prompt}\n\n{given}" if given else prompt


def ingress(request: Request) -> Ingress:
    """The Messages format for one request (its anthropic-beta flags go to Anthropic)."""
    beta = request.headers.get("anthropic-beta", "")
    return Ingress("messages", partial(parse, beta=beta), error_response) if beta else INGRESS


def parse_count(raw: bytes) -> ClientRequest:
    """A `/v1/messages/count_tokens` body as the chat request whose prompt is counted."""
    chat = to_chat(parse_json_body(raw), count_only=True)
    return ClientRequest(endpoint=CHAT, model=chat["model"], raw=raw, payload=chat)


INGRESS = Ingress("messages", parse, error_response)  # without anthropic-beta flags


# ---------------------------------------------------------------------- answer


def _new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def usage_block(usage: UsageCounts) -> Json:
    """Anthropic usage: input_tokens excludes cache reads and writes, reported apart."""
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    return {
        "input_tokens": usage.prompt_tokens - cached,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_creation_tokens,
        "cache_read_input_tokens": cached,
    }


def stop_reason(
    finish: Any, matched: Any, *, tool_calls: bool, stop_sequences: list[str]
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for an OpenAI finish_reason; `matched` is the stop string
    some upstreams (vLLM) report in `stop_reason`."""
    if isinstance(matched, str) and matched in stop_sequences:
        return "stop_sequence", matched
    if tool_calls and finish in (None, "stop", "tool_calls", "function_call"):
        return "tool_use", None
    return STOP_REASONS.get(finish if isinstance(finish, str) else "stop", "end_turn"), None


def _tool_use(call: Json) -> Json:
    function = call.get("function")
    function = function if isinstance(function, dict) else {}
    arguments = function.get("arguments")
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        parsed = {}
    call_id = call.get("id")
    return {
        "type": "tool_use",
        "id": call_id if isinstance(call_id, str) and call_id else _new_id("toolu_"),
        "name": str(function.get("name") or ""),
        "input": parsed if isinstance(parsed, dict) else {},
    }


def message_of(
    reply: Json,
    usage: UsageCounts,
    *,
    model: str,
    message_id: str,
    thinking: bool,
    stop_sequences: list[str],
) -> Json:
    """An OpenAI chat completion as an Anthropic message object."""
    choice = first_choice(reply)
    raw_message = choice.get("message")
    message: Json = raw_message if isinstance(raw_message, dict) else {}
    content: list[Json] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if thinking and isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = reply_text(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    calls = [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    content.extend(_tool_use(call) for call in calls)
    reason, sequence = stop_reason(
        choice.get("finish_reason"),
        choice.get("stop_reason"),
        tool_calls=bool(calls),
        stop_sequences=stop_sequences,
    )
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_block(usage),
    }


def event(kind: str, data: Json) -> bytes:
    """One SSE event as Anthropic sends it: an `event:` line naming the data's type."""
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class StreamEvents:
    """OpenAI chat chunks in, Anthropic stream events out (first choice only: Anthropic has
    no `n`). Blocks open as their kind of delta first arrives and close when another starts;
    stop_reason and usage go out last, in message_delta, once the upstream's usage is known."""

    __slots__ = (
        "_block",
        "_egress",
        "_finish",
        "_index",
        "_kind",
        "_matched",
        "_prompt_tokens",
        "_started",
        "_tools",
    )

    def __init__(self, egress: AnthropicEgress, prompt_tokens: int) -> None:
        self._egress = egress
        self._prompt_tokens = prompt_tokens
        self._started = False
        self._index = -1  # the open block's index (-1: none open)
        self._block = 0  # the next block's index
        self._kind = ""  # the open block's kind: text, thinking or tool_use
        self._tools: dict[Any, tuple[int, str]] = {}  # tool_call index -> (block, call id)
        self._finish: Any = None
        self._matched: Any = None

    def _start(self) -> bytes:
        self._started = True
        message: Json = {
            "id": self._egress.message_id,
            "type": "message",
            "role": "assistant",
            "model": self._egress.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._prompt_tokens, "output_tokens": 0},
        }
        return event("message_start", {"message": message}) + PING_FRAME

    def _close(self) -> bytes:
        if self._index < 0:
            return b""
        index, self._index, self._kind = self._index, -1, ""
        return event("content_block_stop", {"index": index})

    def _open(self, kind: str, block: Json) -> bytes:
        closed = self._close()
        self._index, self._kind = self._block, kind
        self._block += 1
        return closed + event("content_block_start", {"index": self._index, "content_block": block})

    def _delta(self, kind: str, block: Json, delta: Json) -> bytes:
        opened = b"" if self._kind == kind else self._open(kind, block)
        return opened + event("content_block_delta", {"index": self._index, "delta": delta})

    def _tool_calls(self, calls: list[Any]) -> bytes:
        frames: list[bytes] = []
        for delta in call_deltas(calls):
            known = self._tools.get(delta.position)
            if known is None or delta.replaces(known[1]):
                call_id = delta.call_id or _new_id("toolu_")
                block: Json = {"type": "tool_use", "id": call_id, "name": delta.name, "input": {}}
                frames.append(self._open("tool_use", block))
                known = self._tools[delta.position] = (self._index, call_id)
            if delta.arguments:
                piece = {"type": "input_json_delta", "partial_json": delta.arguments}
                frames.append(event("content_block_delta", {"index": known[0], "delta": piece}))
        return b"".join(frames)

    def chunk(self, chunk: Json) -> bytes:
        frames = b"" if self._started else self._start()
        choice = first_choice(chunk)
        delta = choice.get("delta")
        if isinstance(delta, dict):
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if self._egress.thinking and isinstance(reasoning, str) and reasoning:
                frames += self._delta(
                    "thinking",
                    {"type": "thinking", "thinking": "", "signature": ""},
                    {"type": "thinking_delta", "thinking": reasoning},
                )
            text = delta.get("content")
            if isinstance(text, str) and text:
                frames += self._delta(
                    "text", {"type": "text", "text": ""}, {"type": "text_delta", "text": text}
                )
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                frames += self._tool_calls(calls)
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
            self._matched = choice.get("stop_reason")
        return frames

    def end(self, usage: UsageCounts, *, cut: bool) -> bytes:
        frames = (b"" if self._started else self._start()) + self._close()
        if cut:
            reason, sequence = "max_tokens", None
        else:
            reason, sequence = stop_reason(
                self._finish,
                self._matched,
                tool_calls=bool(self._tools),
                stop_sequences=self._egress.stop_sequences,
            )
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        frames += event("message_delta", {"delta": delta, "usage": usage_block(usage)})
        return frames + event("message_stop", {})


def message_events(message: Json) -> bytes:
    """A whole message as the stream of events that would have carried it (channels that
    answer only without streaming)."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    frames = [event("message_start", {"message": start}), PING_FRAME]
    for index, block in enumerate(message.get("content") or ()):
        kind = block.get("type")
        if kind == "text":
            empty: Json = {"type": "text", "text": ""}
            delta: Json = {"type": "text_delta", "text": block.get("text", "")}
        elif kind == "thinking":
            empty = {"type": "thinking", "thinking": "", "signature": ""}
            delta = {"type": "thinking_delta", "thinking": block.get("thinking", "")}
        else:
            empty = {**block, "input": {}}
            partial = orjson.dumps(block.get("input") or {}).decode()
            delta = {"type": "input_json_delta", "partial_json": partial}
        frames.append(event("content_block_start", {"index": index, "content_block": empty}))
        frames.append(event("content_block_delta", {"index": index, "delta": delta}))
        frames.append(event("content_block_stop", {"index": index}))
    delta = {key: message.get(key) for key in ("stop_reason", "stop_sequence")}
    frames.append(event("message_delta", {"delta": delta, "usage": message.get("usage") or {}}))
    frames.append(event("message_stop", {}))
    return b"".join(frames)


class AnthropicEgress:
    """One `/v1/messages` request's way back: its model, whether thinking was asked for, its
    stop sequences and the message id every answer frame carries."""

    __slots__ = ("message_id", "model", "stop_sequences", "thinking")

    done_frame = b""  # Anthropic streams end with message_stop, no [DONE]
    ping_frame = PING_FRAME
    wait_frame = b": WAITING FOR UPSTREAM\n\n"  # before message_start: a comment, not a ping
    media_type = "text/event-stream"

    def __init__(self, *, model: str, thinking: bool, stop_sequences: list[str]) -> None:
        self.model = model
        self.thinking = thinking
        self.stop_sequences = stop_sequences
        self.message_id = _new_id("msg_")

    def reply(self, reply: Json, usage: UsageCounts) -> bytes:
        return orjson.dumps(
            message_of(
                reply,
                usage,
                model=self.model,
                message_id=self.message_id,
                thinking=self.thinking,
                stop_sequences=self.stop_sequences,
            )
        )

    def replay(self, data: bytes) -> bytes:
        """`reply`'s body as stream events (pseudo-streams of non-stream-only channels)."""
        return message_events(orjson.loads(data))

    def stream(self, prompt_tokens: int) -> StreamEvents:
        return StreamEvents(self, prompt_tokens)

    def error(
        self, status: int, message: str, request_id: str, headers: dict[str, str] | None
    ) -> Response:
        return error_answer(status, message, request_id, headers)

    def error_event(self, status: int, message: str, request_id: str) -> bytes:
        """An error after a stream's headers went out: Anthropic's `error` event."""
        return b"event: error\ndata: " + error_body(status, message, request_id) + b"\n\n"
