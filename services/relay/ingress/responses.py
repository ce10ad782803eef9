"""OpenAI Responses (`/v1/responses`) over channels that only speak chat completions.

A channel whose adaptor speaks the Responses API (OpenAI, Azure) gets the client's body as it
came; any other channel (Anthropic, Gemini, Bedrock, DeepSeek, ...) gets the same request as a
chat request, and its answer goes back as a Responses object or Responses' typed event stream
(responses_answer.py). The conversion covers what a stateless relay can carry: `instructions`,
`input` as text or items (messages with input_text / input_image / input_file / input_audio
parts, function_call and function_call_output items; reasoning items are dropped, their
encrypted content means nothing to another provider), function tools and tool_choice,
parallel_tool_calls, max_output_tokens, temperature, top_p, user, reasoning.effort and
text.format. Built-in tools (web search, file search, computer use, MCP, ...), stored
conversations (`previous_response_id`, `conversation`, item references) and background runs
need the provider's own Responses API and are refused with a 400 naming the field. Upstream
Veloera serves Responses on OpenAI-type channels only (`relay/responses_handler.go`).
"""

from __future__ import annotations

from typing import Any

import orjson

from services.relay.adaptors.base import Json
from services.relay.endpoints import CHAT
from services.relay.errors import RelayError
from services.relay.incoming import ClientRequest, bad_request
from services.relay.ingress.responses_answer import ResponsesEgress

MESSAGE_ROLES = {"user": "user", "assistant": "assistant", "system": "system"}
# Chat's `developer` role is OpenAI's own; other providers know it as a system prompt.
MESSAGE_ROLES["developer"] = "system"
TEXT_PARTS = ("input_text", "output_text", "text", "summary_text", "refusal")
STATEFUL = ("previous_response_id", "conversation")
TOOL_CHOICES = ("auto", "none", "required")


def unsupported(what: str, param: str) -> RelayError:
    """A Responses feature the chat form cannot carry: a 400 naming it."""
    return bad_request(
        f"{what} needs a channel that speaks the Responses API; the channel serving this "
        "model speaks chat completions",
        param,
        code="unsupported_on_channel",
    )


# ---------------------------------------------------------------------- input items


def _text(part: Json, where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise bad_request(f"{where} text parts need a text string", "input")
    return text


def _part(part: Any) -> Json:
    """One input content part as a chat content part."""
    if not isinstance(part, dict):
        raise bad_request("content parts must be objects", "input")
    kind = part.get("type")
    if kind in TEXT_PARTS:
        return {"type": "text", "text": _text(part, str(kind))}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise unsupported("an input_image without image_url (file_id)", "input")
        image: Json = {"url": url}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str) or not data:
            raise unsupported("an input_file without file_data (file_id, file_url)", "input")
        name = part.get("filename")
        file: Json = {"file_data": data, "filename": name if isinstance(name, str) else "file"}
        return {"type": "file", "file": file}
    if kind == "input_audio":
        audio = part.get("input_audio")
        if not isinstance(audio, dict):
            raise bad_request("input_audio needs input_audio.data and format", "input")
        return {"type": "input_audio", "input_audio": audio}
    raise bad_request(f"unknown content part type {kind!r}", "input")


def _content(content: Any, role: str) -> str | list[Json]:
    """A message's content for chat: plain text where chat wants text (system, assistant) or
    every part is text, parts otherwise."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request("a message's content must be a string or a list of parts", "input")
    parts = [_part(part) for part in content]
    if role != "user" or all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts if part["type"] == "text")
    return parts


def _call(item: Json) -> Json:
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise bad_request("function_call items need call_id and name", "input")
    arguments = item.get("arguments")
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments if isinstance(arguments, str) else ""},
    }


def _output(item: Json) -> Json:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise bad_request("function_call_output items need call_id", "input")
    output = item.get("output")
    if isinstance(output, list):
        output = "".join(
            _text(part, "function_call_output")
            for part in output
            if isinstance(part, dict) and part.get("type") in TEXT_PARTS
        )
    elif not isinstance(output, str):
        output = orjson.dumps(output).decode() if output is not None else ""
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def _messages(instructions: Any, items: Any) -> list[Json]:
    messages: list[Json] = []
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise bad_request("instructions must be a string", "instructions")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    if not isinstance(items, list) or not items:
        raise bad_request("input must be a string or a non-empty list of items", "input")
    for item in items:
        if not isinstance(item, dict):
            raise bad_request("input items must be objects", "input")
        kind = item.get("type", "message")
        if kind == "message":
            role = MESSAGE_ROLES.get(item.get("role"))  # type: ignore[arg-type]
            if role is None:
                raise bad_request("a message's role must be user, assistant, system or developer")
            messages.append({"role": role, "content": _content(item.get("content"), role)})
        elif kind == "function_call":
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(_call(item))
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [_call(item)]})
        elif kind == "function_call_output":
            messages.append(_output(item))
        elif kind == "reasoning":
            continue  # another provider's reasoning cannot be replayed (encrypted or summarised)
        else:
            raise unsupported(f"input items of type {kind!r}", "input")
    return messages


# ---------------------------------------------------------------------- options


def _tools(tools: Any) -> list[Json]:
    if not isinstance(tools, list):
        raise bad_request("tools must be a list", "tools")
    converted: list[Json] = []
    for tool in tools:
        if not isinstance(tool, dict):
            raise bad_request("tools must be objects", "tools")
        if tool.get("type") != "function":
            raise unsupported(f"the {tool.get('type')!r} tool", "tools")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("function tools need a name", "tools")
        function: Json = {"name": name}
        for field in ("description", "parameters", "strict"):
            if tool.get(field) is not None:
                function[field] = tool[field]
        converted.append({"type": "function", "function": function})
    return converted


def _tool_choice(choice: Any) -> str | Json:
    if choice in TOOL_CHOICES:
        return str(choice)
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("tool_choice of type function needs a name", "tool_choice")
        return {"type": "function", "function": {"name": name}}
    raise unsupported("this tool_choice", "tool_choice")


def _response_format(text: Any) -> Json | None:
    if text is None:
        return None
    if not isinstance(text, dict):
        raise bad_request("text must be an object", "text")
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise bad_request("text.format must be an object", "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema: Json = {"name": fmt.get("name") or "response", "schema": fmt.get("schema") or {}}
        if isinstance(fmt.get("strict"), bool):
            schema["strict"] = fmt["strict"]
        return {"type": "json_schema", "json_schema": schema}
    raise bad_request(f"unknown text.format type {kind!r}", "text.format")


def reasoning_effort(body: Json) -> str:
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") in ("low", "medium", "high"):
        return str(reasoning["effort"])
    return ""


def to_chat(body: Json) -> Json:
    """The chat request for a Responses request (refusing what only Responses can do)."""
    for name in STATEFUL:
        if body.get(name):
            raise unsupported(f"a stored conversation ({name})", name)
    if body.get("background") is True:
        raise unsupported("a background response", "background")
    chat: Json = {
        "model": body["model"],
        "messages": _messages(body.get("instructions"), body.get("input")),
    }
    if body.get("tools"):
        tools = _tools(body["tools"])
        if tools:
            chat["tools"] = tools
            if body.get("tool_choice") is not None:
                chat["tool_choice"] = _tool_choice(body["tool_choice"])
            if isinstance(body.get("parallel_tool_calls"), bool):
                chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    limit = body.get("max_output_tokens")
    if isinstance(limit, int) and limit > 0:
        chat["max_tokens"] = limit
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            chat[name] = value
    if isinstance(body.get("user"), str):
        chat["user"] = body["user"]
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # usage for response.completed
    return chat


def chat_form(req: ClientRequest) -> ClientRequest:
    """The parsed `/v1/responses` request as a chat request answering in Responses' format."""
    chat = to_chat(req.payload)
    return ClientRequest(
        endpoint=CHAT,
        model=req.model,
        raw=orjson.dumps(chat),  # what pass-through sends: the chat body
        payload=chat,
        stream=req.stream,
        max_tokens=req.max_tokens,
        reasoning_effort=reasoning_effort(req.payload),
        egress=ResponsesEgress(req.payload),
    )
