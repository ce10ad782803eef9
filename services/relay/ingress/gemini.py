"""Gemini's API (`/v1beta/models/{model}:generateContent` and friends) over any channel.

A generateContent body becomes an OpenAI chat request (contents with roles user / model,
systemInstruction, generationConfig, tools.functionDeclarations and toolConfig, functionCall /
functionResponse parts, inlineData and fileData parts); embedContent and batchEmbedContents
become an OpenAI embeddings request. The answer goes back through `gemini_answer`. Mirrors
upstream Veloera's `service/gemini_compat.go` and `controller/gemini.go`; the wire format
follows Google's Gemini API reference (which accepts camelCase and snake_case field names).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from services.relay.adaptors.base import Json
from services.relay.auth import ParsedKey, parse_key
from services.relay.endpoints import CHAT, EMBEDDINGS
from services.relay.errors import RelayError
from services.relay.incoming import (
    MAX_N,
    ClientRequest,
    bad_request,
    parse_json_body,
    requested_max_tokens,
)
from services.relay.ingress import Ingress
from services.relay.ingress.gemini_answer import EmbedEgress, GeminiEgress, error_answer

MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}
# Thinking budgets up to these many tokens map to the effort (more, or dynamic -1: "high").
EFFORT_BUDGETS = ((4096, "low"), (16384, "medium"))
LEVELS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mpeg": "mp3", "audio/mp3": "mp3"}
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


# ---------------------------------------------------------------------- errors and keys


def error_response(err: RelayError, request_id: str) -> Response:
    """A relay error (auth, quota, routing, bad input) in Gemini's shape."""
    return error_answer(err.status, err.message, request_id)


def speaks_gemini(request: Request) -> bool:
    """A request from a Gemini client: its key in `x-goog-api-key` or `?key=` (what tells
    google-genai's `GET /v1/models` from OpenAI's)."""
    return "x-goog-api-key" in request.headers or "key" in request.query_params


def read_key(request: Request) -> ParsedKey:
    """`x-goog-api-key`, then `?key=` (upstream `middleware/auth.go` on `/v1beta/models*`),
    then Bearer."""
    value = (
        request.headers.get("x-goog-api-key")
        or request.query_params.get("key")
        or request.headers.get("authorization")
        or ""
    )
    if not value:
        raise RelayError(401, "no API key provided", code="invalid_token")
    parsed = parse_key(value)
    if parsed is None:
        raise RelayError(401, "invalid token", code="invalid_token")
    return parsed


# ---------------------------------------------------------------------- reading fields


def _field(obj: Json, name: str) -> Any:
    """A field by its camelCase name or its snake_case twin (both are valid JSON for Google)."""
    value = obj.get(name)
    return obj.get(_CAMEL.sub("_", name).lower()) if value is None else value


def _object(obj: Json, name: str) -> Json:
    value = _field(obj, name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"{name} must be an object", name)
    return value


def _number(obj: Json, name: str) -> int | float | None:
    value = _field(obj, name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise bad_request(f"{name} must be a number", name)
    return value


def _integer(obj: Json, name: str, low: int, high: int) -> int | None:
    value = _field(obj, name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise bad_request(f"{name} must be an integer between {low} and {high}", name)
    return value


# ---------------------------------------------------------------------- contents


def _parts(content: Any, where: str) -> list[Json]:
    if not isinstance(content, dict):
        raise bad_request(f"{where} must be an object with parts", where)
    parts = content.get("parts")
    if not isinstance(parts, list) or not all(isinstance(part, dict) for part in parts):
        raise bad_request(f"{where}.parts must be an array of objects", where)
    return parts


def _media_part(part: Json) -> Json | None:
    """An inlineData or fileData part as an OpenAI content part."""
    inline = _field(part, "inlineData")
    if isinstance(inline, dict):
        mime, data = _field(inline, "mimeType"), inline.get("data")
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
    file = _field(part, "fileData")
    if isinstance(file, dict):
        uri, mime = _field(file, "fileUri"), _field(file, "mimeType")
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
    call = _field(part, "functionCall")
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
        elif _field(part, "functionCall") is not None:
            tool_calls.append(_call_of(part, calls))
    message: Json = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _tool_message(part: Json, calls: _Calls) -> Json:
    answer = _field(part, "functionResponse")
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
        elif _field(part, "functionResponse") is not None:
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
    system = _field(body, "systemInstruction")
    if system is None:
        return []
    if isinstance(system, str):  # some clients send the bare text
        text = system
    else:
        texts = [
            p["text"] for p in _parts(system, "systemInstruction") if isinstance(p.get("text"), str)
        ]
        text = "\n".join(texts)
    return [{"role": "system", "content": text}] if text else []


def _messages(body: Json) -> list[Json]:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise bad_request("contents must be a non-empty array", "contents")
    out = _system(body)
    calls = _Calls()
    for content in contents:
        parts = _parts(content, "contents")
        role = content.get("role") or "user"
        if role == "model":
            out.append(_model_message(parts, calls))
        elif role in ("user", "function", "tool"):
            out.extend(_user_messages(parts, calls))
        else:
            raise bad_request("content role must be user or model", "contents")
    return out


# ---------------------------------------------------------------------- tools and config


def json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI-style schema as JSON Schema: type names in lower case, `nullable` as a
    null type, Gemini-only keys dropped."""
    if isinstance(schema, list):
        return [json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: Json = {}
    for key, value in schema.items():
        if key in ("propertyOrdering", "property_ordering", "nullable"):
            continue
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: json_schema(item) for name, item in value.items()}
        else:
            out[key] = json_schema(value)
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _function(declaration: Any) -> Json:
    if not isinstance(declaration, dict):
        raise bad_request("each function declaration must be an object", "tools")
    name = declaration.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request("functionDeclaration.name is required", "tools")
    raw_schema = _field(declaration, "parametersJsonSchema")
    schema = (
        raw_schema if isinstance(raw_schema, dict) else json_schema(declaration.get("parameters"))
    )
    function: Json = {
        "name": name,
        "parameters": schema if isinstance(schema, dict) else {"type": "object", "properties": {}},
    }
    if isinstance(declaration.get("description"), str):
        function["description"] = declaration["description"]
    return {"type": "function", "function": function}


def _tools(tools: Any) -> list[Json]:
    """Function declarations as OpenAI functions; Google's own tools (search, code execution)
    have no OpenAI twin and are left out."""
    if not isinstance(tools, list):
        raise bad_request("tools must be an array", "tools")
    out: list[Json] = []
    for tool in tools:
        if not isinstance(tool, dict):
            raise bad_request("each tool must be an object", "tools")
        declarations = _field(tool, "functionDeclarations") or []
        if not isinstance(declarations, list):
            raise bad_request("functionDeclarations must be an array", "tools")
        out.extend(_function(item) for item in declarations)
    return out


def _tool_choice(body: Json) -> str | Json | None:
    """toolConfig.functionCallingConfig as an OpenAI tool_choice (None: not set)."""
    config = _object(_object(body, "toolConfig"), "functionCallingConfig")
    mode = config.get("mode")
    if mode is None:
        return None
    if mode not in MODES:
        raise bad_request(
            "functionCallingConfig.mode must be AUTO, ANY, NONE or VALIDATED", "toolConfig"
        )
    names = _field(config, "allowedFunctionNames")
    if mode == "ANY" and isinstance(names, list) and len(names) == 1 and isinstance(names[0], str):
        return {"type": "function", "function": {"name": names[0]}}
    return MODES[mode]


def _response_format(config: Json, chat: Json) -> None:
    mime = _field(config, "responseMimeType")
    schema = _field(config, "responseJsonSchema")
    if schema is None:
        schema = json_schema(_field(config, "responseSchema"))
    if isinstance(schema, dict):
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": schema},
        }
    elif mime == "application/json":
        chat["response_format"] = {"type": "json_object"}


def reasoning_effort(config: Json) -> str:
    """The reasoning effort thinkingConfig asks for ("" when it asks for none)."""
    thinking = _object(config, "thinkingConfig")
    level = _field(thinking, "thinkingLevel")
    if isinstance(level, str) and level.lower() in LEVELS:
        return LEVELS[level.lower()]
    budget = _field(thinking, "thinkingBudget")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget == 0:
        return ""
    for limit, effort in EFFORT_BUDGETS:
        if 0 < budget <= limit:
            return effort
    return "high"


def _generation(config: Json, chat: Json) -> None:
    """generationConfig's OpenAI twins (topK has none)."""
    limit = _integer(config, "maxOutputTokens", 1, (1 << 30) - 1)
    if limit is not None:
        chat["max_tokens"] = limit
    n = _integer(config, "candidateCount", 1, MAX_N)
    if n is not None and n > 1:
        chat["n"] = n
    for name, twin in (
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
        ("seed", "seed"),
    ):
        value = _number(config, name)
        if value is not None:
            chat[twin] = value
    stops = _field(config, "stopSequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise bad_request("stopSequences must be an array of strings", "generationConfig")
        if stops:
            chat["stop"] = stops
    _response_format(config, chat)


def to_chat(body: Json, model: str, *, count_only: bool = False) -> Json:
    """The OpenAI chat request for a generateContent body (`count_only`: a countTokens body,
    which may wrap it in generateContentRequest)."""
    if count_only and isinstance(_field(body, "generateContentRequest"), dict):
        body = _field(body, "generateContentRequest")
    chat: Json = {"model": model, "messages": _messages(body)}
    choice = _tool_choice(body)
    if body.get("tools") is not None:
        tools = _tools(body["tools"])
        if tools:
            chat["tools"] = tools
            if choice is not None:
                chat["tool_choice"] = choice
    if not count_only:
        _generation(_object(body, "generationConfig"), chat)
    return chat


def parse_generate(raw: bytes, model: str, *, stream: bool, sse: bool) -> ClientRequest:
    """A generateContent / streamGenerateContent body as the canonical chat request."""
    body = parse_json_body(raw)
    chat = to_chat(body, model)
    config = _object(body, "generationConfig")
    thoughts = _object(config, "thinkingConfig").get("includeThoughts") is True
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # usageMetadata for the last chunk
    return ClientRequest(
        endpoint=CHAT,
        model=model,
        raw=orjson.dumps(chat),  # what pass-through sends: the canonical body
        payload=chat,
        stream=stream,
        max_tokens=requested_max_tokens(chat),
        choices=int(chat.get("n", 1)),
        reasoning_effort=reasoning_effort(config),
        egress=GeminiEgress(model=model, thoughts=thoughts, sse=sse),
    )


def parse_count(raw: bytes, model: str) -> ClientRequest:
    """A countTokens body as the chat request whose prompt is counted."""
    chat = to_chat(parse_json_body(raw), model, count_only=True)
    return ClientRequest(endpoint=CHAT, model=model, raw=raw, payload=chat)


def _embed_text(request: Json) -> str:
    texts = [
        p["text"]
        for p in _parts(request.get("content"), "content")
        if isinstance(p.get("text"), str)
    ]
    return "\n".join(texts)


def parse_embed(raw: bytes, model: str, *, batch: bool) -> ClientRequest:
    """An embedContent (one text) or batchEmbedContents (`requests`) body as an OpenAI
    embeddings request."""
    body = parse_json_body(raw)
    if batch:
        requests = body.get("requests")
        if (
            not isinstance(requests, list)
            or not requests
            or not all(isinstance(r, dict) for r in requests)
        ):
            raise bad_request("requests must be a non-empty array of objects", "requests")
    else:
        requests = [body]
    payload: Json = {"model": model, "input": [_embed_text(item) for item in requests]}
    if not batch:
        payload["input"] = payload["input"][0]
    dimensions = _integer(requests[0], "outputDimensionality", 1, 1 << 16)
    if dimensions is not None:
        payload["dimensions"] = dimensions
    return ClientRequest(
        endpoint=EMBEDDINGS,
        model=model,
        raw=orjson.dumps(payload),
        payload=payload,
        egress=EmbedEgress(batch=batch),
    )


def generate_ingress(model: str, *, stream: bool, sse: bool) -> Ingress:
    """The ingress of one generateContent call (the model and the stream kind are in its URL)."""
    return Ingress(
        "gemini",
        lambda raw: parse_generate(raw, model, stream=stream, sse=sse),
        error_response,
        read_key,
    )


def embed_ingress(model: str, *, batch: bool) -> Ingress:
    return Ingress(
        "gemini_embed", lambda raw: parse_embed(raw, model, batch=batch), error_response, read_key
    )
