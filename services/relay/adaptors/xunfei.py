"""iFlytek Spark (18): chat over Spark's websocket API (upstream `relay/channel/xunfei`).

The key is `appId|apiSecret|apiKey`; a base URL is given as http(s) and used as ws(s). The API
version is the channel's `other` (`v1.1`, `v2.1`,
`v3.1`, `v3.5`, `v4.0`, `pro-128k`, `max-32k`), else the model name's `-v3.5`-style suffix,
else v1.1; it names the path (`wss://spark-api.xf-yun.com/{version}/chat`, or the channel's
base URL) and the `domain` Spark expects. The URL carries the HMAC-SHA256 authorization Spark
checks (over host, date and request line, with the API secret, which never leaves the relay).
The chat request goes out as one frame (`header.app_id`, `parameter.chat` with domain,
temperature, max_tokens, `payload.message.text` with the conversation, `payload.functions`
for tools); Spark answers in frames of `payload.choices.text` pieces, the last one
(`header.status` 2) with `payload.usage.text`. A frame with a non-zero `header.code` is
Spark's error: before any text the attempt fails (11200 / 10013 style codes as 401, 11201-11203
rate limits as 429, 10007 / 10013 / 10014 / 10019 content refusals as 400, others 500).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import os
from email.utils import format_datetime
from urllib.parse import urlencode, urlsplit

import orjson

from services.relay.adaptors.base import Json, Outgoing, StreamConverter, Target, UpstreamRequest
from services.relay.adaptors.native import (
    Lines,
    ProviderError,
    ProviderStream,
    canonical_body,
    completion,
    message_list,
    only,
    text_of,
)
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.endpoints import CHAT

DEFAULT_BASE_URL = "wss://spark-api.xf-yun.com"
DOMAINS = {
    "v1.1": "lite",
    "v2.1": "generalv2",
    "v3.1": "generalv3",
    "v3.5": "generalv3.5",
    "v4.0": "4.0Ultra",
    "pro-128k": "pro-128k",
    "max-32k": "max-32k",
}
PATHS = {"pro-128k": "/chat/pro-128k", "max-32k": "/chat/max-32k"}
AUTH_ERRORS = frozenset({10013, 11200})  # an app or key Spark does not authorise
RATE_ERRORS = frozenset({11201, 11202, 11203})
CONTENT_ERRORS = frozenset({10007, 10014, 10019, 10907})


def credentials(key: str) -> tuple[str, str, str]:
    """(app id, API secret, API key) of `appId|apiSecret|apiKey`."""
    parts = key.split("|")
    if len(parts) != 3 or not all(parts):
        raise ProviderError(401, "the channel's key must be appId|apiSecret|apiKey", {})
    return parts[0], parts[1], parts[2]


def version_of(model: str, other: str) -> str:
    if other.strip() in DOMAINS:
        return other.strip()
    for version in DOMAINS:
        if model.endswith("-" + version):
            return version
    return "v1.1"


def signed_url(base: str, version: str, secret: str, api_key: str, now: datetime.datetime) -> str:
    """Spark's URL with its authorization: HMAC-SHA256 over `host`, `date` and the request
    line, base64-encoded with the key into `authorization` (Spark's published scheme)."""
    path = PATHS.get(version, f"/{version}/chat")
    parts = urlsplit(base)
    host = parts.netloc
    date = format_datetime(now.astimezone(datetime.UTC), usegmt=True)
    origin = f"host: {host}\ndate: {date}\nGET {parts.path.rstrip('/')}{path} HTTP/1.1"
    signature = base64.b64encode(
        hmac.new(secret.encode(), origin.encode(), hashlib.sha256).digest()
    ).decode()
    authorization = (
        f'api_key="{api_key}", algorithm="hmac-sha256", headers="host date request-line", '
        f'signature="{signature}"'
    )
    query = urlencode(
        {
            "authorization": base64.b64encode(authorization.encode()).decode(),
            "date": date,
            "host": host,
        }
    )
    return f"{base.rstrip('/')}{path}?{query}"


def to_chat(body: Json, app_id: str, domain: str) -> Json:
    """The OpenAI chat request as Spark's request frame."""
    messages = [
        {
            "role": "system" if m.get("role") == "developer" else m.get("role"),
            "content": text_of(m.get("content")),
        }
        for m in message_list(body)
        if m.get("role") in ("system", "developer", "user", "assistant")
    ]
    chat: Json = {"domain": domain, "auditing": "default"}
    if isinstance(body.get("temperature"), int | float):
        chat["temperature"] = body["temperature"]
    if isinstance(body.get("top_k"), int):
        chat["top_k"] = body["top_k"]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and limit > 0:
        chat["max_tokens"] = limit
    payload: Json = {"message": {"text": messages}}
    functions = [
        tool["function"]
        for tool in body.get("tools") or ()
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
    ]
    if functions:
        payload["functions"] = {"text": functions}
    user = body.get("user")
    header: Json = {
        "app_id": app_id,
        "uid": user[:32] if isinstance(user, str) and user else "veloera",
    }
    return {"header": header, "parameter": {"chat": chat}, "payload": payload}


def _raise_error(frame: Json) -> None:
    header = frame.get("header")
    code = header.get("code") if isinstance(header, dict) else None
    if not isinstance(code, int) or code == 0:
        return
    message = str((header or {}).get("message") or f"Spark error {code}")
    if code in AUTH_ERRORS:
        status = 401
    elif code in RATE_ERRORS:
        status = 429
    elif code in CONTENT_ERRORS:
        status = 400
    else:
        status = 500
    raise ProviderError(status, message, {"type": "upstream_error", "code": str(code)})


def _frames(data: bytes) -> list[Json]:
    frames = []
    for line in data.split(b"\n"):
        if line.strip():
            try:
                frame = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(frame, dict):
                frames.append(frame)
    return frames


def _pieces(frame: Json) -> tuple[str, list[Json], Json | None]:
    """(text, function calls, OpenAI usage) of one answer frame."""
    payload = frame.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    choices = payload.get("choices")
    texts = choices.get("text") if isinstance(choices, dict) else None
    text = ""
    calls: list[Json] = []
    for item in texts if isinstance(texts, list) else ():
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("content"), str):
            text += item["content"]
        call = item.get("function_call")
        if isinstance(call, dict) and isinstance(call.get("name"), str):
            calls.append(
                {
                    "id": "call_" + os.urandom(8).hex(),
                    "type": "function",
                    "function": {
                        "name": call["name"],
                        "arguments": str(call.get("arguments") or "{}"),
                    },
                }
            )
    usage = payload.get("usage")
    counts = usage.get("text") if isinstance(usage, dict) else None
    openai_usage = None
    if isinstance(counts, dict):
        prompt, output = counts.get("prompt_tokens"), counts.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(output, int):
            openai_usage = {
                "prompt_tokens": prompt,
                "completion_tokens": output,
                "total_tokens": prompt + output,
            }
    return text, calls, openai_usage


def to_completion(data: bytes, model: str) -> bytes:
    text, calls, usage = "", [], None
    for frame in _frames(data):
        _raise_error(frame)
        piece, found, counted = _pieces(frame)
        text += piece
        calls += found
        usage = counted or usage
    message: Json = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = calls
    choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
    return completion(
        id_="chatcmpl-" + os.urandom(12).hex(), model=model, choices=[choice], usage=usage
    )


class ChatStream(ProviderStream):
    """Spark's frames as OpenAI chunks; the finish reason and usage with the last frame."""

    __slots__ = ("_calls", "_lines")

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self._calls = 0
        self._lines = Lines()

    def feed(self, data: bytes) -> bytes:
        lines = self._lines.feed(data)
        return b"".join(self._frame(frame) for frame in _frames(b"\n".join(lines)))

    def finish(self) -> bytes:
        return b"".join(self._frame(frame) for frame in _frames(self._lines.rest()))

    def _frame(self, frame: Json) -> bytes:
        try:
            _raise_error(frame)
        except ProviderError as exc:
            return self.failed(exc)
        frames = self.opening()
        text, calls, usage = _pieces(frame)
        if text:
            frames += self._out.delta({"content": text})
        for call in calls:
            frames += self._out.delta({"tool_calls": [{"index": self._calls, **call}]})
            self._calls += 1
        header = frame.get("header")
        if isinstance(header, dict) and header.get("status") == 2:
            frames += self._out.delta({}, "tool_calls" if self._calls else "stop")
            if usage is not None:
                frames += self._out.usage(usage)
        return frames


class XunfeiAdaptor(OpenAIAdaptor):
    supports_stream_options = False
    transport = "websocket"
    default_base_url = DEFAULT_BASE_URL

    def base_url(self, target: Target) -> str:
        """A channel's http(s) base URL as the ws(s) URL it stands for (channels save http(s)
        URLs only)."""
        base = super().base_url(target)
        if base.startswith(("http://", "https://")):
            return "ws" + base.removeprefix("http")
        return base

    def build_request(self, target: Target, body: Outgoing) -> UpstreamRequest:
        only(target.endpoint, CHAT)
        app_id, secret, api_key = credentials(target.key)
        version = version_of(target.model, target.channel.other)
        url = signed_url(
            self.base_url(target), version, secret, api_key, datetime.datetime.now(datetime.UTC)
        )
        native = to_chat(canonical_body(body), app_id, DOMAINS[version])
        return UpstreamRequest(url, {}, orjson.dumps(native))

    def convert_response(self, target: Target, data: bytes) -> bytes:
        return to_completion(data, target.model)

    def stream_converter(self, target: Target) -> StreamConverter:
        return ChatStream(target.model)
