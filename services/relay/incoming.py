"""Parse and validate a client request body per endpoint (upstream `relay/relay-text.go`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

from services.relay.adaptors.base import FormFile
from services.relay.endpoints import RESPONSES, Endpoint
from services.relay.errors import RelayError

if TYPE_CHECKING:
    from services.relay.ingress import Egress

MAX_TOKENS_LIMIT = 1 << 30
CHAT_LIMITS = ("max_tokens", "max_completion_tokens")
RESPONSES_LIMITS = ("max_output_tokens",)  # the Responses API's name for the output limit
MAX_N = 128
MAX_FORM_FILES = 16
MAX_FORM_FIELDS = 64


def bad_request(
    message: str, param: str | None = None, code: str = "invalid_request"
) -> RelayError:
    return RelayError(400, message, type_="invalid_request_error", code=code, param=param)


@dataclass(frozen=True, slots=True)
class Passthrough:
    """The client's own body in its own format, for a channel whose provider speaks that
    format (sent as it came, answered as the provider answered: nothing lost either way)."""

    format: str  # e.g. "anthropic": an adaptor's `native_format`
    body: dict[str, Any]
    headers: dict[str, str]  # client headers the provider reads (anthropic-beta)


@dataclass(slots=True)
class ClientRequest:
    endpoint: Endpoint
    model: str
    raw: bytes
    payload: dict[str, Any] = field(default_factory=dict)  # JSON body, or the form's fields
    files: list[FormFile] = field(default_factory=list)
    fields: list[tuple[str, str]] = field(default_factory=list)  # form fields, in order
    stream: bool = False
    include_usage: bool = False  # the client asked for stream usage itself
    max_tokens: int = 0
    choices: int = 1  # `n`: answers asked for, each of which may use max_tokens
    reasoning_effort: str = ""  # an ingress format's wish, sent to reasoning models only
    egress: Egress | None = None  # the client's format when not OpenAI's (ingress/)
    passthrough: Passthrough | None = None  # the same request in the client's own format


def parse_json_body(raw: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise bad_request("request body must be a JSON object")
    return payload


def requested_max_tokens(payload: dict[str, Any], names: tuple[str, ...] = CHAT_LIMITS) -> int:
    """The output limit the client asked for (the largest of `names`; 0 when none is set)."""
    best = 0
    for name in names:
        value = payload.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad_request(f"{name} must be an integer", name)
        if value < 0 or value >= MAX_TOKENS_LIMIT:
            raise bad_request(f"{name} is invalid", name)
        best = max(best, value)
    return best


def _choices(payload: dict[str, Any]) -> int:
    n = payload.get("n")
    if n is None:
        return 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N:
        raise bad_request(f"n must be an integer between 1 and {MAX_N}", "n")
    return n


def _model_of(payload: dict[str, Any], endpoint: Endpoint, path_model: str | None) -> str:
    if path_model:
        return path_model
    model = payload.get("model")
    if model is None or model == "":
        if endpoint.default_model:
            return endpoint.default_model
        raise bad_request("model is required", "model")
    if not isinstance(model, str):
        raise bad_request("model must be a string", "model")
    return model


def parse_json_request(
    endpoint: Endpoint, raw: bytes, path_model: str | None = None
) -> ClientRequest:
    payload = parse_json_body(raw)
    model = _model_of(payload, endpoint, path_model)
    if endpoint.required:
        value = payload.get(endpoint.required)
        if value is None or value == "" or value == []:
            raise bad_request(f"{endpoint.required} is required", endpoint.required)
        if endpoint.chat and not isinstance(value, list):
            raise bad_request("messages must be an array", "messages")
    choices = _choices(payload)
    stream = endpoint.streamable and payload.get("stream") is True
    options = payload.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    return ClientRequest(
        endpoint=endpoint,
        model=model,
        raw=raw,
        payload=payload,
        stream=stream,
        include_usage=include_usage,
        choices=choices,
        max_tokens=requested_max_tokens(
            payload, RESPONSES_LIMITS if endpoint is RESPONSES else CHAT_LIMITS
        ),
    )


async def parse_form_request(endpoint: Endpoint, raw: bytes, content_type: str) -> ClientRequest:
    if not content_type.lower().startswith("multipart/form-data"):
        raise bad_request(
            "this endpoint takes multipart/form-data", code="unsupported_content_type"
        )
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "headers": [(b"content-type", content_type.encode("latin-1"))],
    }
    request = Request(scope, receive)
    try:
        form = await request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS)
    except Exception:
        raise bad_request("malformed multipart body") from None
    fields: dict[str, Any] = {}
    pairs: list[tuple[str, str]] = []
    files: list[FormFile] = []
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                files.append(
                    FormFile(
                        name,
                        value.filename or "file",
                        value.content_type or "application/octet-stream",
                        data,
                    )
                )
            else:
                fields[name] = value
                pairs.append((name, value))
    finally:
        await form.close()
    if not files:
        raise bad_request("a file is required", "file")
    model = _model_of(fields, endpoint, None)
    return ClientRequest(
        endpoint=endpoint, model=model, raw=raw, payload=fields, files=files, fields=pairs
    )
