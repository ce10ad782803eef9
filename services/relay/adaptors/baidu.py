"""Baidu Wenxin Qianfan v1 (15): ERNIE chat and embeddings through the wenxinworkshop API
(upstream `relay/channel/baidu`).

The key is `apiKey|secretKey`, exchanged for an access token at `{base}/oauth/2.0/token`
(cached until shortly before it expires, dropped at once when Baidu calls it invalid). Chat goes
to `{base}/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/{endpoint}?access_token=...`, the endpoint
named after the model (ERNIE-4.0-8K -> completions_pro, ...; other names lower-cased); system
messages become `system`, max_tokens `max_output_tokens`, frequency_penalty `penalty_score`,
`user` `user_id`. The answer's `result` is the reply; streams are SSE events of `result` pieces
ending with `is_end`. Baidu reports errors inside a 200 answer (`error_code`, `error_msg`): they
fail the attempt like an HTTP error would: 110/111 (token invalid or expired) as a 503 that drops
the cached token (the key itself was accepted; the SDKs' retry gets a fresh token), 17/18 and
the 3365xx rate limits as 429, a key refused at the token endpoint as 401. Embeddings go to
`.../embeddings/{endpoint}` and come back in OpenAI's shape. Tools are refused (400) rather than
silently dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import aiohttp
import orjson

from services.relay.adaptors.base import (
    Json,
    Outgoing,
    StreamConverter,
    Target,
    UpstreamRequest,
    UsageCounts,
)
from services.relay.adaptors.native import (
    DataLines,
    ProviderError,
    ProviderStream,
    canonical_body,
    completion,
    json_object,
    message_list,
    only,
    text_of,
)
from services.relay.adaptors.openai import OpenAIAdaptor, usage_from
from services.relay.endpoints import CHAT, EMBEDDINGS
from services.relay.errors import RelayError

DEFAULT_BASE_URL = "https://aip.baidubce.com"
CHAT_PATH = "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/"
EMBEDDINGS_PATH = "/rpc/2.0/ai_custom/v1/wenxinworkshop/embeddings/"
ENDPOINTS = {
    "ERNIE-4.0-8K": "completions_pro",
    "ERNIE-Bot-4": "completions_pro",
    "ERNIE-3.5-8K": "completions",
    "ERNIE-Bot": "completions",
    "ERNIE-Bot-8K": "ernie_bot_8k",
    "ERNIE-Bot-turbo": "eb-instant",
    "ERNIE-Lite-8K-0922": "eb-instant",
    "ERNIE-Speed": "ernie_speed",
    "ERNIE-Speed-8K": "ernie_speed",
    "BLOOMZ-7B": "bloomz_7b1",
    "Embedding-V1": "embedding-v1",
    "bge-large-zh": "bge_large_zh",
    "bge-large-en": "bge_large_en",
    "tao-8k": "tao_8k",
}
TOKEN_ERRORS = frozenset({110, 111})  # access token invalid / expired: fetched anew next time
RATE_ERRORS = frozenset({4, 17, 18, 19, 336501, 336502, 336503})
TOKEN_MARGIN = 3600.0  # seconds before expiry a token is renewed (they last 30 days)
TOKEN_TIMEOUT = 15.0


def endpoint_of(model: str) -> str:
    return ENDPOINTS.get(model, model.lower())


def status_of(code: int) -> int:
    if code in TOKEN_ERRORS:
        return 503  # the key is fine (it bought the token): worth retrying, not disabling
    if code in RATE_ERRORS:
        return 429
    if code in (336003, 336006, 336007):  # invalid parameters, messages, roles
        return 400
    return 500


def to_chat(body: Json, stream: bool) -> Json:
    """The OpenAI chat request as Baidu's chat request."""
    if body.get("tools") or body.get("functions"):
        raise RelayError(
            400,
            "tools are not supported by this channel type",
            type_="invalid_request_error",
            code="unsupported_parameter",
        )
    system: list[str] = []
    messages: list[Json] = []
    for message in message_list(body):
        role = message.get("role")
        text = text_of(message.get("content"))
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            messages.append({"role": role, "content": text})
    if not messages:
        raise RelayError(400, "a user message is required", type_="invalid_request_error")
    native: Json = {"messages": messages, "stream": stream}
    if system:
        native["system"] = "\n".join(system)
    for name, baidu_name in (("temperature", "temperature"), ("top_p", "top_p")):
        if isinstance(body.get(name), int | float):
            native[baidu_name] = body[name]
    if isinstance(body.get("frequency_penalty"), int | float):
        native["penalty_score"] = body["frequency_penalty"]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and limit > 0:
        native["max_output_tokens"] = limit
    stop = body.get("stop")
    if stop:
        native["stop"] = [stop] if isinstance(stop, str) else stop
    if isinstance(body.get("user"), str):
        native["user_id"] = body["user"]
    return native


def raise_error(answer: Json) -> None:
    """Baidu's error inside a 200 answer, as the attempt's failure."""
    code = answer.get("error_code")
    if not isinstance(code, int) or isinstance(code, bool) or code == 0:
        return
    message = str(answer.get("error_msg") or f"Baidu error {code}")
    raise ProviderError(status_of(code), message, {"type": "upstream_error", "code": str(code)})


def to_completion(answer: Json, model: str) -> bytes:
    finish = "length" if answer.get("is_truncated") is True else "stop"
    if answer.get("finish_reason") == "content_filter":
        finish = "content_filter"
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": str(answer.get("result") or "")},
        "finish_reason": finish,
    }
    usage = usage_from(answer.get("usage"))
    return completion(
        id_=str(answer.get("id") or "chatcmpl-" + os.urandom(12).hex()),
        model=model,
        choices=[choice],
        usage=_usage_json(usage),
    )


def _usage_json(usage: UsageCounts | None) -> Json | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def to_embeddings(answer: Json, model: str) -> bytes:
    data = [item for item in answer.get("data") or () if isinstance(item, dict)]
    body: Json = {
        "object": "list",
        "model": model,
        "data": [
            {
                "object": "embedding",
                "index": item.get("index", i),
                "embedding": item.get("embedding"),
            }
            for i, item in enumerate(data)
        ],
    }
    usage = usage_from(answer.get("usage"))
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}
    return orjson.dumps(body)


class ChatStream(ProviderStream):
    """Baidu's SSE events (`result` pieces, `is_end` with the usage) as OpenAI chunks; an
    error answered instead of a stream fails the attempt."""

    __slots__ = ("_lines",)

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self._lines = DataLines()

    def feed(self, data: bytes) -> bytes:
        if self.held(data):
            return b""
        return b"".join(self._event(event) for event in self._lines.feed(data))

    def finish(self) -> bytes:
        if self._pending:
            answer = json_object(self._pending) or {}
            raise_error(answer)
            raise ProviderError(502, "Baidu answered a stream with a non-stream body", {})
        return b"".join(self._event(event) for event in self._lines.finish())

    def _event(self, event: Json) -> bytes:
        try:
            raise_error(event)
        except ProviderError as exc:
            return self.failed(exc)
        frames = self.opening()
        result = event.get("result")
        if isinstance(result, str) and result:
            frames += self._out.delta({"content": result})
        if event.get("is_end") is True:
            frames += self._out.delta({}, "length" if event.get("is_truncated") else "stop")
            usage = _usage_json(usage_from(event.get("usage")))
            if usage is not None:
                frames += self._out.usage(usage)
        return frames


class AccessTokens:
    """Access tokens per key (by its digest: the key is never a dict key), renewed before they
    expire and dropped when Baidu calls one invalid."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @staticmethod
    def _digest(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    def drop(self, key: str) -> None:
        self._tokens.pop(self._digest(key), None)

    async def token(self, key: str, base_url: str, http: aiohttp.ClientSession, proxy: str) -> str:
        digest = self._digest(key)
        cached = self._tokens.get(digest)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        async with self._locks.setdefault(digest, asyncio.Lock()):
            cached = self._tokens.get(digest)
            if cached is not None and cached[1] > time.time():
                return cached[0]
            token, lifetime = await self._fetch(key, base_url, http, proxy)
            self._tokens[digest] = (token, time.time() + max(lifetime - TOKEN_MARGIN, 60.0))
            return token

    @staticmethod
    async def _fetch(
        key: str, base_url: str, http: aiohttp.ClientSession, proxy: str
    ) -> tuple[str, float]:
        client_id, sep, secret = key.partition("|")
        if not sep or not client_id or not secret:
            raise ProviderError(401, "the channel's key must be apiKey|secretKey", {})
        params = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
        }
        url = (base_url or DEFAULT_BASE_URL).rstrip("/") + "/oauth/2.0/token"
        try:
            async with (
                asyncio.timeout(TOKEN_TIMEOUT),
                http.post(url, params=params, proxy=proxy or None) as response,
            ):
                answer = json_object(await response.read()) or {}
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ProviderError(
                502, f"the access token request failed ({type(exc).__name__})", {}
            ) from None
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            reason = answer.get("error_description") or answer.get("error") or "no access_token"
            raise ProviderError(401, f"Baidu refused the key: {reason}", {})
        lifetime = answer.get("expires_in")
        return token, float(lifetime) if isinstance(lifetime, int | float) else 86400.0


class BaiduAdaptor(OpenAIAdaptor):
    supports_stream_options = False
    needs_token = True
    default_base_url = DEFAULT_BASE_URL

    def __init__(self) -> None:
        self.tokens = AccessTokens()

    async def access_token(
        self, key: str, base_url: str, http: aiohttp.ClientSession, proxy: str
    ) -> str:
        return await self.tokens.token(key, base_url, http, proxy)

    def build_request(self, target: Target, body: Outgoing) -> UpstreamRequest:
        only(target.endpoint, CHAT, EMBEDDINGS)
        canonical = canonical_body(body)
        if target.endpoint is EMBEDDINGS:
            raw = canonical.get("input")
            native: Json = {"input": [raw] if isinstance(raw, str) else raw}
            path = EMBEDDINGS_PATH + endpoint_of(target.model)
        else:
            native = to_chat(canonical, target.stream)
            path = CHAT_PATH + endpoint_of(target.model)
        url = f"{self.base_url(target)}{path}?access_token={target.token}"
        headers = {"Content-Type": "application/json"}
        headers["Accept"] = "text/event-stream" if target.stream else "application/json"
        return UpstreamRequest(url, headers, orjson.dumps(native))

    def convert_response(self, target: Target, data: bytes) -> bytes:
        answer = json_object(data)
        if answer is None:
            return data
        try:
            raise_error(answer)
        except ProviderError as exc:
            if exc.error.get("code") in {str(code) for code in TOKEN_ERRORS}:
                self.tokens.drop(target.key)  # the next attempt asks for a fresh one
            raise
        if target.endpoint is EMBEDDINGS:
            return to_embeddings(answer, target.model)
        return to_completion(answer, target.model)

    def stream_converter(self, target: Target) -> StreamConverter:
        return ChatStream(target.model)
