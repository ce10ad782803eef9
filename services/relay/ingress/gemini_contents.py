"""Gemini contents as OpenAI chat messages: roles user / model, systemInstruction, text,
inlineData and fileData parts, and functionCall / functionResponse parts linked by tool call ids.

Also the field readers every Gemini body needs (Google accepts camelCase and snake_case names).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from services.relay.adaptors.base import Json
from services.relay.incoming import bad_request

AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mpeg": "mp3", "audio/mp3": "mp3"}
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


# ---------------------------------------------------------------------- reading fields


def field(obj: Json, name: str) -> Any:
    """A field by its camelCase name or its snake_case twin (both are valid JSON for Google)."""
    value = obj.get(name)
    return obj.get(_CAMEL.sub("_", name).lower()) if value is None else value


def object_field(obj: Json, name: str) -> Json:
    value = field(obj, name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"{name} must be an object", name)
    return value


def number_field(obj: Json, name: str) -> int | float | None:
    value = field(obj, name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise bad_request(f"{name} must be a number", name)
    return value


def integer_field(obj: Json, name: str, low: int, high: int) -> int | None:
    value = field(obj, name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise bad_request(f"{name} must be an integer between {low} and {high}", name)
    return value


# ---------------------------------------------------------------------- contents


def parts_of(content: Any, where: str) -> list[Json]:
    if not isinstance(content, dict):
        raise bad_request(f"{where} must be an object with parts", where)
    parts = content.get("parts")
    if not isinstance(parts, list) or not all(isinstance(part, dict) for part in parts):
        raise bad_request(f"{where}.parts must be an array of objects", where)
    return parts


def _media_part(part: Json) -> Json | None:
    """An inlineData or fileData part as an OpenAI content part."""
    inline = field(part, "inlineData")
    if isinstance(inline, dict):
        mime, data = field(inline, "mimeType"), inline.get("data")
        if not isinstance(mime, str) or not isinstance(data, str):
            raise bad_request("inlineData needs mimeType and data", "contents")
        if mime in AUDIO_FORMATS:
            return {
                "type": "input_audio",
                "input_audio": {"data": data, "format": AUDIO_FORMATS[mime]},
            }
        if mime.startswith("image/"):
            return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
        return {
            "type": "file",
            "file": {"filename": "file", "file_data": f"data:{mime};base64,{data}"},
        }
    file = field(part, "fileData")
    if isinstance(file, dict):
        uri, mime = field(file, "fileUri"), field(file, "mimeType")
        if not isinstance(uri, str) or not uri:
            raise bad_request("fileData needs fileUri", "contents")
        if not isinstance(mime, str) or mime.startswith("image/"):
            return {"type": "image_url", "image_url": {"url": uri}}
        return {"type": "text", "text": uri}
    return None


class _Calls:
    """Tool call ids across turns: Gemini links a functionResponse to its functionCall by name
    (ids are optional), OpenAI by id; each response takes the oldest unanswered call of its
    name."""

    __slots__ = ("_made", "_pending")

    def __init__(self) -> None:
        self._made = 0
        self._pending: list[tuple[str, str]] = []  # (id, name), oldest first

    def _new(self) -> str:
        self._made += 1
        return f"call_{self._made}"

    def call(self, name: str, given: Any) -> str:
        call_id = given if isinstance(given, str) and given else self._new()
        self._pending.append((call_id, name))
        return call_id

    def answer(self, name: str, given: Any) -> str:
        for position, (call_id, called) in enumerate(self._pending):
            if (isinstance(given, str) and given == call_id) or (not given and called == name):
                del self._pending[position]
                return call_id
        return given if isinstance(given, str) and given else self._new()


def _call_of(part: Json, calls: _Calls) -> Json:
    call = field(part, "functionCall")
    name = call.get("name") if isinstance(call, dict) else None
    if not isinstance(call, dict) or not isinstance(name, str) or not name:
        raise bad_request("functionCall.name is required", "contents")
    args = call.get("args")
    return {
        "id": calls.call(name, call.get("id")),
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(args or {}).decode()},
    }


def _model_message(parts: list[Json], calls: _Calls) -> Json:
    texts: list[str] = []
    tool_calls: list[Json] = []
    for part in parts:
        if part.get("thought") is True:
            continue  # the model's own thoughts are not sent back
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif field(part, "functionCall") is not None:
            tool_calls.append(_call_of(part, calls))
    message: Json = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _tool_message(part: Json, calls: _Calls) -> Json:
    answer = field(part, "functionResponse")
    name = answer.get("name") if isinstance(answer, dict) else None
    if not isinstance(answer, dict) or not isinstance(name, str) or not name:
        raise bad_request("functionResponse.name is required", "contents")
    response = answer.get("response")
    text = response if isinstance(response, str) else orjson.dumps(response or {}).decode()
    return {"role": "tool", "tool_call_id": calls.answer(name, answer.get("id")), "content": text}


def _user_messages(parts: list[Json], calls: _Calls) -> list[Json]:
    """Function responses first (as `tool` messages, which must follow the model's calls), then
    the user's own parts."""
    tools: list[Json] = []
    pieces: list[Json] = []
    for part in parts:
        if isinstance(part.get("text"), str):
            pieces.append({"type": "text", "text": part["text"]})
        elif field(part, "functionResponse") is not None:
            tools.append(_tool_message(part, calls))
        else:
            media = _media_part(part)
            if media is not None:
                pieces.append(media)
    if not pieces:
        return tools
    if len(pieces) == 1 and pieces[0]["type"] == "text":
        return [*tools, {"role": "user", "content": pieces[0]["text"]}]
    return [*tools, {"role": "user", "content": pieces}]


def _system(body: Json) -> list[Json]:
    system = field(body, "systemInstruction")
    if system is None:
        return []
    if isinstance(system, str):  # some clients send the bare text
        text = system
    else:
        texts = [
            p["text"]
            for p in parts_of(system, "systemInstruction")
            if isinstance(p.get("text"), str)
        ]
        text = "\n".join(texts)
    return [{"role": "system", "content": text}] if text else []


def messages_of(body: Json) -> list[Json]:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise bad_request("contents must be a non-empty array", "contents")
    out = _system(body)
    calls = _Calls()
    for content in contents:
        parts = parts_of(content, "contents")
        role = content.get("role") or "user"
        if role == "model":
            out.append(_model_message(parts, calls))
        elif role in ("user", "function", "tool"):
            out.extend(_user_messages(parts, calls))
        else:
            raise bad_request("content role must be user or model", "contents")
    return out
