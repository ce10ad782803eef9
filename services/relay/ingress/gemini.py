"""Gemini's API (`/v1beta/models/{model}:generateContent` and friends) over any channel.

A generateContent body becomes an OpenAI chat request (contents with roles user / model,
systemInstruction, generationConfig, tools.functionDeclarations and toolConfig, functionCall /
functionResponse parts, inlineData and fileData parts); embedContent and batchEmbedContents
become an OpenAI embeddings request. The answer goes back through `gemini_answer`. Mirrors
upstream Veloera's `service/gemini_compat.go` and `controller/gemini.go`; the wire format
follows Google's Gemini API reference (which accepts camelCase and snake_case field names).
"""

from __future__ import annotations

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
    MAX_TOKENS_LIMIT,
    ClientRequest,
    Passthrough,
    bad_request,
    parse_json_body,
    requested_max_tokens,
)
from services.relay.ingress import Ingress
from services.relay.ingress.gemini_answer import EmbedEgress, GeminiEgress, error_answer
from services.relay.ingress.gemini_contents import (
    field,
    integer_field,
    messages_of,
    number_field,
    object_field,
    parts_of,
)

MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}
# Thinking budgets up to these many tokens map to the effort (more, or dynamic -1: "high").
EFFORT_BUDGETS = ((4096, "low"), (16384, "medium"))
LEVELS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}


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
    raw_schema = field(declaration, "parametersJsonSchema")
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
        declarations = field(tool, "functionDeclarations") or []
        if not isinstance(declarations, list):
            raise bad_request("functionDeclarations must be an array", "tools")
        out.extend(_function(item) for item in declarations)
    return out


def _tool_choice(body: Json) -> str | Json | None:
    """toolConfig.functionCallingConfig as an OpenAI tool_choice (None: not set)."""
    config = object_field(object_field(body, "toolConfig"), "functionCallingConfig")
    mode = config.get("mode")
    if mode is None:
        return None
    if mode not in MODES:
        raise bad_request(
            "functionCallingConfig.mode must be AUTO, ANY, NONE or VALIDATED", "toolConfig"
        )
    names = field(config, "allowedFunctionNames")
    if mode == "ANY" and isinstance(names, list) and len(names) == 1 and isinstance(names[0], str):
        return {"type": "function", "function": {"name": names[0]}}
    return MODES[mode]


def _response_format(config: Json, chat: Json) -> None:
    mime = field(config, "responseMimeType")
    schema = field(config, "responseJsonSchema")
    if schema is None:
        schema = json_schema(field(config, "responseSchema"))
    if isinstance(schema, dict):
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": schema},
        }
    elif mime == "application/json":
        chat["response_format"] = {"type": "json_object"}


def reasoning_effort(config: Json) -> str:
    """The reasoning effort thinkingConfig asks for ("" when it asks for none)."""
    thinking = object_field(config, "thinkingConfig")
    level = field(thinking, "thinkingLevel")
    if isinstance(level, str) and level.lower() in LEVELS:
        return LEVELS[level.lower()]
    budget = field(thinking, "thinkingBudget")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget == 0:
        return ""
    for limit, effort in EFFORT_BUDGETS:
        if 0 < budget <= limit:
            return effort
    return "high"


def _generation(config: Json, chat: Json) -> None:
    """generationConfig's OpenAI twins (topK has none)."""
    limit = integer_field(config, "maxOutputTokens", 1, MAX_TOKENS_LIMIT - 1)
    if limit is not None:
        chat["max_tokens"] = limit
    n = integer_field(config, "candidateCount", 1, MAX_N)
    if n is not None and n > 1:
        chat["n"] = n
    for name, twin in (
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
        ("seed", "seed"),
    ):
        value = number_field(config, name)
        if value is not None:
            chat[twin] = value
    stops = field(config, "stopSequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise bad_request("stopSequences must be an array of strings", "generationConfig")
        if stops:
            chat["stop"] = stops
    _response_format(config, chat)


def to_chat(body: Json, model: str, *, count_only: bool = False) -> Json:
    """The OpenAI chat request for a generateContent body (`count_only`: a countTokens body,
    which may wrap it in generateContentRequest)."""
    if count_only and isinstance(field(body, "generateContentRequest"), dict):
        body = field(body, "generateContentRequest")
    chat: Json = {"model": model, "messages": messages_of(body)}
    choice = _tool_choice(body)
    if body.get("tools") is not None:
        tools = _tools(body["tools"])
        if tools:
            chat["tools"] = tools
            if choice is not None:
                chat["tool_choice"] = choice
    if not count_only:
        _generation(object_field(body, "generationConfig"), chat)
    return chat


def parse_generate(raw: bytes, model: str, *, stream: bool, sse: bool) -> ClientRequest:
    """A generateContent / streamGenerateContent body as the canonical chat request."""
    body = parse_json_body(raw)
    chat = to_chat(body, model)
    config = object_field(body, "generationConfig")
    thoughts = field(object_field(config, "thinkingConfig"), "includeThoughts") is True
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
        # Gemini channels get the body as it came (and answer it as they do) when the client
        # takes SSE, the framing they stream in; a JSON-array stream goes through chat.
        passthrough=Passthrough("gemini", body, {}) if sse or not stream else None,
    )


def prepend_system(body: Json, prompt: str) -> None:
    """A channel's system prompt before the client's systemInstruction (a passed-through
    body)."""
    given = body.get("systemInstruction")
    parts = given.get("parts") if isinstance(given, dict) else None
    rest = [part for part in parts if isinstance(part, dict)] if isinstance(parts, list) else []
    body["systemInstruction"] = {"parts": [{"text": prompt}, *rest]}


def parse_count(raw: bytes, model: str) -> ClientRequest:
    """A countTokens body as the chat request whose prompt is counted."""
    chat = to_chat(parse_json_body(raw), model, count_only=True)
    return ClientRequest(endpoint=CHAT, model=model, raw=raw, payload=chat)


def _embed_text(request: Json) -> str:
    texts = [
        p["text"]
        for p in parts_of(request.get("content"), "content")
        if isinstance(p.get("text"), str)
    ]
    if not any(texts):
        raise bad_request("content must have a text part", "content")
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
    dimensions = integer_field(requests[0], "outputDimensionality", 1, 1 << 16)
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
