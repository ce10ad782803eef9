"""Tencent Hunyuan (23): chat through the Tencent Cloud API's `ChatCompletions` action
(version 2023-09-01), signed with TC3-HMAC-SHA256 (upstream `relay/channel/tencent`).

The key is `appId|secretId|secretKey` (or `secretId|secretKey`); every request is signed for the
host it goes to (`hunyuan.tencentcloudapi.com` unless a base URL is set) with the secret key,
which never leaves the relay. The body is Hunyuan's: `Model`, `Messages` (`Role`, `Content`, or
`Contents` with image URLs; `ToolCalls` and `ToolCallId` for tool turns), `Stream`,
`Temperature`, `TopP`, `Tools` (function parameters as JSON text) and `ToolChoice`. Answers and
SSE chunks (`Choices[].Message` / `Delta`, `Usage` in `PromptTokens` / `CompletionTokens`)
become OpenAI completions and chunks. Tencent reports errors inside a 200 answer
(`Response.Error.Code`): `AuthFailure.*` fail the attempt as 401, the rate limits as 429,
`InvalidParameter*` as 400, anything else as 500.

The signature follows Tencent Cloud's published TC3-HMAC-SHA256 algorithm (canonical request ->
string to sign -> HMAC-SHA256 chain over date, service and `tc3_request`); the official SDK
is a large dependency for these few lines of hashlib.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

from services.relay.adaptors.base import Json, Outgoing, StreamConverter, Target, UpstreamRequest
from services.relay.adaptors.native import (
    DataLines,
    ProviderError,
    ProviderStream,
    canonical_body,
    completion,
    functions_of,
    json_object,
    message_list,
    only,
    text_of,
)
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.endpoints import CHAT
from services.relay.errors import RelayError

DEFAULT_BASE_URL = "https://hunyuan.tencentcloudapi.com"
SERVICE, ACTION, VERSION = "hunyuan", "ChatCompletions", "2023-09-01"
FINISH = {
    "stop": "stop",
    "tool_calls": "tool_calls",
    "length": "length",
    "sensitive": "content_filter",
}
ROLES = frozenset({"system", "user", "assistant", "tool"})


# ---------------------------------------------------------------------- signing


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def tc3_authorization(
    secret_id: str, secret_key: str, host: str, payload: bytes, timestamp: int
) -> str:
    """The `Authorization` header of a POST of `payload` (JSON) to `host`."""
    date = datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d")
    canonical = "\n".join(
        (
            "POST",
            "/",
            "",
            f"content-type:application/json\nhost:{host}\n",
            "content-type;host",
            hashlib.sha256(payload).hexdigest(),
        )
    )
    scope = f"{date}/{SERVICE}/tc3_request"
    to_sign = "\n".join(
        ("TC3-HMAC-SHA256", str(timestamp), scope, hashlib.sha256(canonical.encode()).hexdigest())
    )
    signing = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), SERVICE), "tc3_request")
    signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, "
        f"SignedHeaders=content-type;host, Signature={signature}"
    )


def credentials(key: str) -> tuple[str, str]:
    """(secret id, secret key) of `appId|secretId|secretKey` or `secretId|secretKey`."""
    parts = key.split("|")
    if len(parts) in (2, 3) and all(parts[-2:]):
        return parts[-2], parts[-1]
    raise ProviderError(401, "the channel's key must be appId|secretId|secretKey", {})


# ---------------------------------------------------------------------- request


def _contents(content: Any) -> list[Json] | None:
    """Hunyuan's `Contents` for a message with images, else None (plain `Content`)."""
    if not isinstance(content, list):
        return None
    images = [p for p in content if isinstance(p, dict) and p.get("type") == "image_url"]
    if not images:
        return None
    parts: list[Json] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            parts.append({"Type": "text", "Text": part["text"]})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str):
                parts.append({"Type": "image_url", "ImageUrl": {"Url": url}})
    return parts


def _message(message: Json) -> Json:
    role = message.get("role")
    role = "system" if role == "developer" else role
    if role not in ROLES:
        raise RelayError(
            400,
            f"messages of role {role!r} are not supported by this channel type",
            type_="invalid_request_error",
        )
    native: Json = {"Role": role}
    contents = _contents(message.get("content"))
    if contents is not None:
        native["Contents"] = contents
    else:
        native["Content"] = text_of(message.get("content"))
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        native["ToolCalls"] = [
            {
                "Id": call.get("id"),
                "Type": "function",
                "Function": {
                    "Name": (call.get("function") or {}).get("name"),
                    "Arguments": (call.get("function") or {}).get("arguments") or "{}",
                },
            }
            for call in calls
            if isinstance(call, dict)
        ]
    if role == "tool":
        native["ToolCallId"] = message.get("tool_call_id") or ""
    return native


def _tools(tools: Any) -> list[Json]:
    converted: list[Json] = []
    for function in functions_of(tools):
        converted.append(
            {
                "Type": "function",
                "Function": {
                    "Name": function["name"],
                    "Description": str(function.get("description") or ""),
                    "Parameters": orjson.dumps(function.get("parameters") or {}).decode(),
                },
            }
        )
    return converted


def to_chat(body: Json, model: str, stream: bool) -> Json:
    """The OpenAI chat request as Hunyuan's ChatCompletions request."""
    native: Json = {
        "Model": model,
        "Messages": [_message(message) for message in message_list(body)],
        "Stream": stream,
    }
    if isinstance(body.get("temperature"), int | float):
        native["Temperature"] = body["temperature"]
    if isinstance(body.get("top_p"), int | float):
        native["TopP"] = body["top_p"]
    tools = _tools(body.get("tools"))
    if tools:
        native["Tools"] = tools
        choice = body.get("tool_choice")
        if choice in ("none", "auto"):
            native["ToolChoice"] = choice
        elif isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            native["ToolChoice"] = "custom"
            native["CustomTool"] = next(
                (t for t in tools if t["Function"]["Name"] == name), tools[0]
            )
    return native


# ---------------------------------------------------------------------- answer


def raise_error(answer: Json) -> Json:
    """The answer's `Response` object; Tencent's error inside it, as the attempt's failure."""
    response = answer.get("Response")
    response = response if isinstance(response, dict) else answer
    error = response.get("Error")
    if not isinstance(error, dict):
        return response
    code = str(error.get("Code") or "InternalError")
    message = str(error.get("Message") or code)
    if code.startswith("AuthFailure"):
        status = 401
    elif code.startswith(("LimitExceeded", "RequestLimitExceeded")):
        status = 429
    elif code.startswith(("InvalidParameter", "MissingParameter", "UnsupportedOperation")):
        status = 400
    else:
        status = 500
    raise ProviderError(status, message, {"type": "upstream_error", "code": code})


def openai_usage(usage: Any) -> Json | None:
    if not isinstance(usage, dict):
        return None
    prompt, output = usage.get("PromptTokens"), usage.get("CompletionTokens")
    if not isinstance(prompt, int) or not isinstance(output, int):
        return None
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}


def _object(holder: Json, name: str) -> Json:
    value = holder.get(name)
    return value if isinstance(value, dict) else {}


def _calls(native: Any) -> list[Json]:
    calls: list[Json] = []
    for index, call in enumerate(native if isinstance(native, list) else ()):
        if not isinstance(call, dict):
            continue
        function = _object(call, "Function")
        calls.append(
            {
                "index": call.get("Index", index),
                "id": call.get("Id") or "call_" + os.urandom(8).hex(),
                "type": "function",
                "function": {
                    "name": function.get("Name") or "",
                    "arguments": function.get("Arguments") or "",
                },
            }
        )
    return calls


def to_completion(response: Json, model: str) -> bytes:
    choices: list[Json] = []
    for index, choice in enumerate(response.get("Choices") or ()):
        if not isinstance(choice, dict):
            continue
        native = _object(choice, "Message")
        message: Json = {"role": "assistant", "content": str(native.get("Content") or "")}
        calls = _calls(native.get("ToolCalls"))
        if calls:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        reason = FINISH.get(str(choice.get("FinishReason") or ""), "stop")
        choices.append({"index": index, "message": message, "finish_reason": reason})
    return completion(
        id_=str(response.get("Id") or "chatcmpl-" + os.urandom(12).hex()),
        model=model,
        choices=choices,
        usage=openai_usage(response.get("Usage")),
    )


class ChatStream(ProviderStream):
    """Hunyuan's SSE chunks as OpenAI chunks, the last usage once at the end; an error answered
    instead of a stream fails the attempt."""

    __slots__ = ("_lines", "_usage")

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self._lines = DataLines()
        self._usage: Json | None = None

    def feed(self, data: bytes) -> bytes:
        if self.held(data):
            return b""
        return b"".join(self._chunk(chunk) for chunk in self._lines.feed(data))

    def finish(self) -> bytes:
        if self._pending:
            raise_error(json_object(self._pending) or {})
            raise ProviderError(502, "Tencent answered a stream with a non-stream body", {})
        frames = b"".join(self._chunk(chunk) for chunk in self._lines.finish())
        return frames + (self._out.usage(self._usage) if self._usage is not None else b"")

    def _chunk(self, chunk: Json) -> bytes:
        try:
            raise_error(chunk)
        except ProviderError as exc:
            return self.failed(exc)
        frames = self.opening()
        usage = openai_usage(chunk.get("Usage"))
        if usage is not None:
            self._usage = usage  # cumulative: the last one counts
        for choice in chunk.get("Choices") or ():
            if not isinstance(choice, dict):
                continue
            native = _object(choice, "Delta")
            delta: Json = {}
            if isinstance(native.get("Content"), str) and native["Content"]:
                delta["content"] = native["Content"]
            calls = _calls(native.get("ToolCalls"))
            if calls:
                delta["tool_calls"] = calls
            reason = choice.get("FinishReason")
            finish = FINISH.get(reason, "stop") if isinstance(reason, str) and reason else None
            if delta or finish:
                frames += self._out.delta(delta, finish)
        return frames


class TencentAdaptor(OpenAIAdaptor):
    supports_stream_options = False
    default_base_url = DEFAULT_BASE_URL

    def build_request(self, target: Target, body: Outgoing) -> UpstreamRequest:
        only(target.endpoint, CHAT)
        secret_id, secret_key = credentials(target.key)
        native = to_chat(canonical_body(body), target.model, target.stream)
        payload = orjson.dumps(native)
        url = self.base_url(target) + "/"
        host = urlsplit(url).netloc
        timestamp = int(time.time())
        headers = {
            "Authorization": tc3_authorization(secret_id, secret_key, host, payload, timestamp),
            "Content-Type": "application/json",
            "Host": host,
            "X-TC-Action": ACTION,
            "X-TC-Version": VERSION,
            "X-TC-Timestamp": str(timestamp),
            "Accept": "text/event-stream" if target.stream else "application/json",
        }
        region = target.channel.other.strip()
        if region:
            headers["X-TC-Region"] = region
        return UpstreamRequest(url, headers, payload)

    def convert_response(self, target: Target, data: bytes) -> bytes:
        answer = json_object(data)
        if answer is None:
            return data
        return to_completion(raise_error(answer), target.model)

    def stream_converter(self, target: Target) -> StreamConverter:
        return ChatStream(target.model)
