"""Google Gemini (24): the Generative Language API (`generateContent`,
`streamGenerateContent?alt=sse`, `batchEmbedContents`), key in `x-goog-api-key`.

The canonical OpenAI chat request becomes `contents` (assistant turns as `model`, tool calls as
functionCall parts, tool results as functionResponse parts), `systemInstruction`,
`generationConfig`, `tools.functionDeclarations` with the JSON-schema fields Gemini rejects
cleaned out, `toolConfig` and safety settings at BLOCK_NONE; the model suffixes `-thinking`,
`-thinking-<budget>` and `-nothinking` set `thinkingConfig`. Answers and SSE chunks become OpenAI
completions and chunks with usageMetadata (thoughts, cached tokens) as OpenAI usage. Mirrors
upstream `relay/channel/gemini/relay-gemini.go` and `adaptor.go`.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import orjson

from services.relay.adaptors.base import (
    Json,
    Outgoing,
    StreamConverter,
    Target,
    UpstreamRequest,
)
from services.relay.adaptors.counts import CountReader
from services.relay.adaptors.native import (
    ERROR_TYPES,
    ChunkWriter,
    DataLines,
    ProviderError,
    add_turn,
    arguments_of,
    canonical_body,
    completion,
    error_frame,
    functions_of,
    json_object,
    only,
    split_data_url,
    text_of,
)
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.endpoints import CHAT, EMBEDDINGS, IMAGES
from services.relay.errors import RelayError
from services.relay.options import DEFAULT_PROVIDER_OPTIONS, ProviderOptions

DEFAULT_VERSION = "v1beta"  # `gemini.version_settings` default
VERSION = re.compile(r"v\d+(alpha|beta)?\d*")
SAFETY_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
)
# JSON-schema keywords Gemini's function declarations refuse (upstream's schema cleaning).
REJECTED_SCHEMA_KEYS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "definitions",
        "additionalProperties",
        "patternProperties",
        "unevaluatedProperties",
        "default",
        "examples",
        "const",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "propertyNames",
    }
)
STRING_FORMATS = frozenset({"enum", "date-time"})  # the only string formats Gemini accepts
THINKING_MAX_BUDGET = 24576
THINKING_BUDGET = re.compile(r"-thinking-(\d+)$")
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
TOOL_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}


# ---------------------------------------------------------------------- request


def clean_schema(schema: Any) -> Any:
    """A JSON schema without the keywords Gemini refuses (recursively), string formats other
    than enum and date-time dropped."""
    if isinstance(schema, list):
        return [clean_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: Json = {}
    for key, value in schema.items():
        if key in REJECTED_SCHEMA_KEYS:
            continue
        if key == "format" and schema.get("type") == "string" and value not in STRING_FORMATS:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: clean_schema(prop) for name, prop in value.items()}
        else:
            out[key] = clean_schema(value)
    return out


def _parts(content: Any) -> list[Json]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[Json] = []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str) and part["text"]:
            parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                continue
            inline = split_data_url(url)
            if inline is not None:
                parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
            else:
                parts.append({"fileData": {"mimeType": _mime_of(url), "fileUri": url}})
    return parts


def _mime_of(url: str) -> str:
    path = url.split("?", 1)[0].lower()
    for suffix, mime in ((".png", "image/png"), (".webp", "image/webp"), (".gif", "image/gif")):
        if path.endswith(suffix):
            return mime
    return "image/jpeg"


def _call_parts(message: Json, names: dict[str, str]) -> list[Json]:
    parts = _parts(message.get("content"))
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        names[str(call.get("id") or "")] = function["name"]
        parts.append(
            {
                "functionCall": {
                    "name": function["name"],
                    "args": arguments_of(function.get("arguments")),
                }
            }
        )
    return parts


def _response_part(message: Json, names: dict[str, str]) -> Json:
    """A tool result as a functionResponse (Gemini wants the function's name, which the
    OpenAI tool message only names by call id)."""
    content = text_of(message.get("content"))
    name = names.get(str(message.get("tool_call_id") or ""), "") or str(message.get("name") or "")
    parsed = arguments_of(content)
    response = parsed if parsed else {"content": content}
    return {"functionResponse": {"name": name, "response": response}}


def _contents(messages: Any) -> tuple[list[Json], list[Json]]:
    """(system parts, contents); consecutive turns of one role are merged."""
    system: list[Json] = []
    contents: list[Json] = []
    names: dict[str, str] = {}  # tool call id -> function name
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            text = text_of(message.get("content"))
            if text:
                system.append({"text": text})
            continue
        if role == "assistant":
            role, parts = "model", _call_parts(message, names)
        elif role == "tool":
            role, parts = "user", [_response_part(message, names)]
        else:
            role, parts = "user", _parts(message.get("content"))
        add_turn(contents, role, "parts", parts)
    return system, contents


def _declarations(tools: Any) -> list[Json]:
    out: list[Json] = []
    for function in functions_of(tools):
        declaration: Json = {"name": function["name"]}
        if isinstance(function.get("description"), str):
            declaration["description"] = function["description"]
        schema = function.get("parameters")
        if isinstance(schema, dict) and schema.get("properties"):  # an empty object is refused
            declaration["parameters"] = clean_schema(schema)
        out.append(declaration)
    return out


def _tool_config(choice: Any) -> Json | None:
    if isinstance(choice, str) and choice in TOOL_MODES:
        return {"functionCallingConfig": {"mode": TOOL_MODES[choice]}}
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if isinstance(name, str) and name:
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return None


def _generation_config(body: Json) -> Json:
    config: Json = {}
    names = (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("n", "candidateCount"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    )
    for name, native in names:
        value = body.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            config[native] = value
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            config["maxOutputTokens"] = value
            break
    stop = body.get("stop")
    if isinstance(stop, str) and stop:
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        config["stopSequences"] = [s for s in stop if isinstance(s, str)]
    _response_format(body.get("response_format"), config)
    return config


def _response_format(value: Any, config: Json) -> None:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
    elif kind == "json_schema" and isinstance(value, dict):
        config["responseMimeType"] = "application/json"
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            config["responseSchema"] = clean_schema(schema)


def thinking_of(model: str, config: Json, providers: ProviderOptions) -> str:
    """With `gemini.thinking_adapter_enabled`: the model name without its thinking suffix,
    `config.thinkingConfig` set from it (a budget only for the models listed in
    `gemini.models_supported_thinking_budget`). Without it the name goes out as it is."""
    if not providers.gemini_thinking:
        return model
    budget: int | None = None
    include = True
    match = THINKING_BUDGET.search(model)
    if match is not None:
        name, budget = model[: match.start()], int(match.group(1))
    elif model.endswith("-nothinking"):
        name, budget, include = model.removesuffix("-nothinking"), 0, False
    elif model.endswith("-thinking"):
        name = model.removesuffix("-thinking")
        share = int(providers.gemini_thinking_share * config.get("maxOutputTokens", 0))
        budget = share if 0 < share <= THINKING_MAX_BUDGET else THINKING_MAX_BUDGET
    else:
        return model
    thinking: Json = {"includeThoughts": True} if include else {}
    if name in providers.gemini_thinking_models:
        thinking["thinkingBudget"] = budget
    if thinking:
        config["thinkingConfig"] = thinking
    return name


def safety_settings(providers: ProviderOptions) -> list[Json]:
    """`gemini.safety_settings`: a threshold per category, its "default", else BLOCK_NONE."""
    chosen = providers.gemini_safety
    fallback = chosen.get("default", "BLOCK_NONE")
    return [{"category": c, "threshold": chosen.get(c, fallback)} for c in SAFETY_CATEGORIES]


def to_generate(
    body: Json, model: str, providers: ProviderOptions = DEFAULT_PROVIDER_OPTIONS
) -> tuple[Json, str]:
    """(the generateContent request, the model name for the URL)."""
    system, contents = _contents(body.get("messages"))
    native: Json = {"contents": contents, "safetySettings": safety_settings(providers)}
    if system:
        native["systemInstruction"] = {"parts": system}
    config = _generation_config(body)
    model = thinking_of(model, config, providers)
    if config:
        native["generationConfig"] = config
    declarations = _declarations(body.get("tools"))
    if declarations:
        native["tools"] = [{"functionDeclarations": declarations}]
        tool_config = _tool_config(body.get("tool_choice"))
        if tool_config is not None:
            native["toolConfig"] = tool_config
    return native, model


def to_batch_embed(body: Json, model: str) -> Json:
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else [t for t in raw or () if isinstance(t, str)]
    dimensions = body.get("dimensions")
    requests: list[Json] = []
    for text in texts:
        item: Json = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if isinstance(dimensions, int) and not isinstance(dimensions, bool):
            item["outputDimensionality"] = dimensions
        requests.append(item)
    return {"requests": requests}


# ---------------------------------------------------------------------- response


def openai_usage(metadata: Any) -> Json | None:
    """usageMetadata in OpenAI's shape: thoughts are completion (reasoning) tokens, cached
    content is part of the prompt."""
    if not isinstance(metadata, dict):
        return None
    reader = CountReader()
    prompt = reader.count(metadata, "promptTokenCount")
    answer = reader.count(metadata, "candidatesTokenCount")
    thoughts = reader.count(metadata, "thoughtsTokenCount")
    cached = reader.count(metadata, "cachedContentTokenCount")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": answer + thoughts,
        "total_tokens": prompt + answer + thoughts,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def _call_id() -> str:
    return "call_" + os.urandom(12).hex()


def _tool_call(call: Json) -> Json:
    return {
        "id": _call_id(),
        "type": "function",
        "function": {
            "name": str(call.get("name") or ""),
            "arguments": orjson.dumps(call.get("args") or {}).decode(),
        },
    }


def _split(candidate: Json) -> tuple[str, str, list[Json]]:
    """(text, thoughts, function calls) of a candidate."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[Json] = []
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        call = part.get("functionCall")
        if isinstance(call, dict):
            calls.append(_tool_call(call))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") is True else texts).append(part["text"])
    return "".join(texts), "".join(thoughts), calls


def _finish(reason: Any, calls: bool) -> str | None:
    if not isinstance(reason, str) or not reason:
        return None
    if calls and reason == "STOP":
        return "tool_calls"
    return FINISH_REASONS.get(reason, "stop")


def to_completion(response: Json, model: str) -> bytes:
    candidates = response.get("candidates")
    choices: list[Json] = []
    for position, candidate in enumerate(candidates if isinstance(candidates, list) else ()):
        if not isinstance(candidate, dict):
            continue
        text, thoughts, calls = _split(candidate)
        message: Json = {"role": "assistant", "content": text if text or not calls else None}
        if thoughts:
            message["reasoning_content"] = thoughts
        if calls:
            message["tool_calls"] = calls
        index = candidate.get("index")
        choices.append(
            {
                "index": index if isinstance(index, int) else position,
                "message": message,
                "finish_reason": _finish(candidate.get("finishReason"), bool(calls)) or "stop",
            }
        )
    if not choices:  # the prompt itself was blocked (promptFeedback.blockReason)
        choices.append(
            {
                "index": 0,
                "message": {"role": "assistant", "content": ""},
                "finish_reason": "content_filter",
            }
        )
    return completion(
        id_=str(response.get("responseId") or "chatcmpl-" + os.urandom(12).hex()),
        model=str(response.get("modelVersion") or model),
        choices=choices,
        usage=openai_usage(response.get("usageMetadata")),
    )


# OpenAI image sizes as Imagen aspect ratios (Imagen picks the pixels itself).
ASPECT_RATIOS = {
    "256x256": "1:1",
    "512x512": "1:1",
    "1024x1024": "1:1",
    "1792x1024": "16:9",
    "1024x1792": "9:16",
    "1536x1024": "4:3",
    "1024x1536": "3:4",
}
MAX_IMAGES = 4  # Imagen's sampleCount limit


def to_imagen(body: Json) -> Json:
    """An OpenAI image generation request as Imagen's `:predict` request (upstream
    `relay/channel/gemini/adaptor.go`'s imagen path)."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise RelayError(400, "prompt is required", type_="invalid_request_error", param="prompt")
    count = body.get("n", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_IMAGES:
        raise RelayError(
            400,
            f"n must be between 1 and {MAX_IMAGES} for Imagen",
            type_="invalid_request_error",
            param="n",
        )
    size = body.get("size")
    ratio = ASPECT_RATIOS.get(size, "1:1") if isinstance(size, str) else "1:1"
    parameters = {"sampleCount": count, "aspectRatio": ratio, "personGeneration": "allow_adult"}
    return {"instances": [{"prompt": prompt}], "parameters": parameters}


def to_images(response: Json) -> bytes:
    """Imagen's predictions as OpenAI's images answer (base64: Imagen returns no URLs)."""
    predictions = response.get("predictions")
    items = predictions if isinstance(predictions, list) else []
    data = [
        {"b64_json": item["bytesBase64Encoded"], "revised_prompt": item.get("prompt")}
        for item in items
        if isinstance(item, dict) and isinstance(item.get("bytesBase64Encoded"), str)
    ]
    return orjson.dumps({"created": int(time.time()), "data": data})


def to_embeddings(response: Json, model: str) -> bytes:
    embeddings = response.get("embeddings")
    data = [
        {"object": "embedding", "index": i, "embedding": item.get("values") or []}
        for i, item in enumerate(embeddings if isinstance(embeddings, list) else ())
        if isinstance(item, dict)
    ]
    return orjson.dumps({"object": "list", "data": data, "model": model})


class GenerateStream:
    """Gemini's SSE chunks (each a GenerateContentResponse) as OpenAI chunks; usageMetadata is
    cumulative, so the last one becomes the final usage chunk."""

    __slots__ = ("_calls", "_lines", "_out", "_sent", "_usage")

    def __init__(self, model: str) -> None:
        self._lines = DataLines()
        self._out = ChunkWriter("chatcmpl-" + os.urandom(12).hex(), model)
        self._usage: Json | None = None
        self._calls = 0
        self._sent = False

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._chunk(item) for item in self._lines.feed(data))

    def finish(self) -> bytes:
        frames = b"".join(self._chunk(item) for item in self._lines.finish())
        if self._usage is not None:
            frames += self._out.usage(self._usage)
        return frames

    def _chunk(self, response: Json) -> bytes:
        if "error" in response:
            return self._error(response["error"])
        usage = openai_usage(response.get("usageMetadata"))
        if usage is not None:
            self._usage = usage
        if isinstance(response.get("modelVersion"), str):
            self._out.model = response["modelVersion"]
        frames: list[bytes] = []
        if not self._sent:
            frames.append(self._out.delta({"role": "assistant", "content": ""}))
            self._sent = True
        candidates = response.get("candidates")
        for candidate in candidates[:1] if isinstance(candidates, list) else ():
            if isinstance(candidate, dict):
                frames.append(self._candidate(candidate))
        return b"".join(frames)

    def _candidate(self, candidate: Json) -> bytes:
        text, thoughts, calls = _split(candidate)
        delta: Json = {}
        if thoughts:
            delta["reasoning_content"] = thoughts
        if text:
            delta["content"] = text
        if calls:
            delta["tool_calls"] = [
                {"index": self._calls + i, **call} for i, call in enumerate(calls)
            ]
            self._calls += len(calls)
        finish = _finish(candidate.get("finishReason"), self._calls > 0)
        if not delta and finish is None:
            return b""
        return self._out.delta(delta, finish)

    def _error(self, error: Any) -> bytes:
        error = error if isinstance(error, dict) else {}
        message = str(error.get("message") or "upstream stream error")
        code = error.get("code")
        status = code if isinstance(code, int) and 400 <= code < 600 else 500
        if not self._sent:
            raise ProviderError(status, message, _error_object(status, error))
        return error_frame(message, ERROR_TYPES.get(status, "upstream_error"), _status(error))


def _status(error: Json) -> str | None:
    status = error.get("status")
    return status if isinstance(status, str) and status else None


def _error_object(status: int, error: Json) -> Json:
    return {
        "type": ERROR_TYPES.get(status, "upstream_error"),
        "code": _status(error) or "bad_response_status_code",
    }


def parse_error(status: int, body: bytes) -> tuple[str, Json | None]:
    """Google's error body (`{"error": {code, message, status}}`, a one-item array of it on
    streaming calls) as a message and an OpenAI error object."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"bad response status code {status}", None
    if isinstance(payload, list) and payload:
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return f"bad response status code {status}", None
    message = error.get("message")
    text = message if isinstance(message, str) and message else f"bad response status code {status}"
    return text, _error_object(status, error)


class GeminiAdaptor(OpenAIAdaptor):
    supports_stream_options = False
    native_format = "gemini"  # generateContent passes through (ingress/gemini.py)
    default_base_url = "https://generativelanguage.googleapis.com"

    def version(self, target: Target, model: str) -> str:
        """The API version: the channel's `other` when it names one, else
        `gemini.version_settings` for the model or its "default", else v1beta."""
        other = target.channel.other.strip()
        if VERSION.fullmatch(other):
            return other
        versions = target.providers.gemini_versions
        return versions.get(model) or versions.get("default") or DEFAULT_VERSION

    def headers(self, target: Target) -> dict[str, str]:
        return {"x-goog-api-key": target.key}

    def build_request(self, target: Target, body: Outgoing) -> UpstreamRequest:
        only(target.endpoint, CHAT, EMBEDDINGS, IMAGES)
        canonical = canonical_body(body)
        if target.endpoint is IMAGES:
            model, action = target.model, "predict"
            native = to_imagen(canonical)
        elif target.endpoint is EMBEDDINGS:
            model, action = target.model, "batchEmbedContents"
            native = to_batch_embed(canonical, model)
        elif target.native:  # the client's own generateContent body
            native = dict(canonical)
            native.setdefault("safetySettings", safety_settings(target.providers))
            given = native.get("generationConfig")
            config = dict(given) if isinstance(given, dict) else {}
            model = thinking_of(target.model, config, target.providers)
            if config:
                native["generationConfig"] = config
            action = "streamGenerateContent?alt=sse" if target.stream else "generateContent"
        else:
            native, model = to_generate(canonical, target.model, target.providers)
            action = "streamGenerateContent?alt=sse" if target.stream else "generateContent"
        url = f"{self.base_url(target)}/{self.version(target, model)}/models/{model}:{action}"
        headers = self.headers(target)
        headers["Content-Type"] = "application/json"
        headers["Accept"] = "text/event-stream" if target.stream else "application/json"
        return UpstreamRequest(url, headers, orjson.dumps(native))

    def convert_response(self, target: Target, data: bytes) -> bytes:
        response = json_object(data)
        if response is None:
            return data
        if target.endpoint is EMBEDDINGS:
            return to_embeddings(response, target.model)
        if target.endpoint is IMAGES:
            return to_images(response)
        if "candidates" not in response and "promptFeedback" not in response:
            return data
        return to_completion(response, target.model)

    def stream_converter(self, target: Target) -> StreamConverter:
        return GenerateStream(target.model)

    def parse_error(self, status: int, body: bytes) -> tuple[str, Json | None]:
        return parse_error(status, body)
