"""Google Vertex AI (41): Gemini and Claude models on Vertex, authorised by a service account.

The channel's key is a service-account JSON document; google-auth turns it into an OAuth access
token (cached until five minutes before it expires) sent as `Authorization: Bearer`. The region
comes from the channel's `other`: a JSON object naming a region per model and a `default`
(`global` uses the global endpoint). Gemini models go to
`/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:generateContent`
(streams `:streamGenerateContent?alt=sse`) with the Gemini adaptor's conversions; Claude models
(`claude-*`) go to `publishers/anthropic/models/{model}:rawPredict` (`:streamRawPredict`) with
Anthropic's body and the Anthropic conversions. The base URL, when set, replaces
`https://{region}-aiplatform.googleapis.com`. Mirrors upstream `relay/channel/vertex/`.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import re
import time
from typing import Any

import aiohttp
import orjson
from google.auth.exceptions import GoogleAuthError
from google.auth.transport.requests import Request as AuthRequest
from google.oauth2 import service_account

from services.relay.adaptors import anthropic, gemini
from services.relay.adaptors.base import (
    Json,
    Outgoing,
    StreamConverter,
    Target,
    UpstreamRequest,
)
from services.relay.adaptors.native import ProviderError, canonical_body, input_texts, only
from services.relay.endpoints import CHAT, EMBEDDINGS
from services.relay.errors import RelayError

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
CLAUDE_VERSION = "vertex-2023-10-16"
DEFAULT_REGION = "us-central1"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
TOKEN_MARGIN = 300.0  # seconds before expiry a cached token is renewed
TOKEN_TIMEOUT = 30.0
DATED = re.compile(r"-(\d{8})$")
CLAUDE_IDS = {  # names whose Vertex id is not simply `name@date`
    "claude-3-5-sonnet-20241022": "claude-3-5-sonnet-v2@20241022",
}


def _misconfigured(message: str) -> RelayError:
    return RelayError(502, message, type_="upstream_error", code="channel_misconfigured")


def account_of(key: str, *, any_token_uri: bool = True) -> Json:
    """The service-account JSON document of a channel key. google-auth posts a signed grant to
    its `token_uri`: unless any is allowed (CHANNEL_PRIVATE_ADDRESSES), only Google's."""
    try:
        info = orjson.loads(key)
    except orjson.JSONDecodeError:
        raise _misconfigured("the channel's key is not a service-account JSON document") from None
    if not isinstance(info, dict) or not isinstance(info.get("project_id"), str):
        raise _misconfigured("the channel's service-account JSON has no project_id")
    if not any_token_uri and info.get("token_uri", GOOGLE_TOKEN_URI) != GOOGLE_TOKEN_URI:
        raise _misconfigured(f"the service account's token_uri must be {GOOGLE_TOKEN_URI}")
    return info


class AccessTokens:
    """OAuth access tokens per service account, refreshed by google-auth off the event loop."""

    def __init__(self, *, any_token_uri: bool) -> None:
        self._any_token_uri = any_token_uri
        self._tokens: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def token(self, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()  # the key itself is never a dict key
        cached = self._tokens.get(digest)
        if cached is not None and cached[1] - TOKEN_MARGIN > time.time():
            return cached[0]
        lock = self._locks.setdefault(digest, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(digest)
            if cached is not None and cached[1] - TOKEN_MARGIN > time.time():
                return cached[0]
            account = account_of(key, any_token_uri=self._any_token_uri)
            token, expires = await self._refresh(account)
            self._tokens[digest] = (token, expires)
            return token

    @staticmethod
    async def _refresh(info: Json) -> tuple[str, float]:
        try:
            load = service_account.Credentials.from_service_account_info
            credentials = load(info, scopes=SCOPES)  # type: ignore[no-untyped-call]
        except (ValueError, KeyError) as exc:
            raise _misconfigured(f"the channel's service-account JSON is invalid: {exc}") from None
        try:
            async with asyncio.timeout(TOKEN_TIMEOUT):
                await asyncio.to_thread(credentials.refresh, AuthRequest())
        except TimeoutError:
            raise ProviderError(504, "the service-account token request timed out", {}) from None
        except GoogleAuthError as exc:
            raise ProviderError(401, f"the service account was refused: {exc}", {}) from None
        expiry = credentials.expiry  # naive UTC, as google-auth keeps it
        if expiry is None:
            return str(credentials.token), time.time() + 3600
        return str(credentials.token), expiry.replace(tzinfo=datetime.UTC).timestamp()


def to_predict_embeddings(body: Json) -> Json:
    """An OpenAI embeddings request as Vertex AI's text-embedding `:predict` request."""
    texts = input_texts(body)
    native: Json = {"instances": [{"content": text} for text in texts]}
    dimensions = body.get("dimensions")
    if isinstance(dimensions, int) and not isinstance(dimensions, bool) and dimensions > 0:
        native["parameters"] = {"outputDimensionality": dimensions}
    return native


def embeddings_of(answer: Json, model: str) -> bytes:
    """Vertex AI's predictions as OpenAI's embeddings answer; the usage is the token counts
    Vertex reports per input."""
    predictions = answer.get("predictions")
    data: list[Json] = []
    tokens = 0
    for index, item in enumerate(predictions if isinstance(predictions, list) else ()):
        embeddings = item.get("embeddings") if isinstance(item, dict) else None
        if not isinstance(embeddings, dict):
            continue
        data.append({"object": "embedding", "index": index, "embedding": embeddings.get("values")})
        statistics = embeddings.get("statistics")
        count = statistics.get("token_count") if isinstance(statistics, dict) else None
        if isinstance(count, int | float) and not isinstance(count, bool):
            tokens += int(count)
    body: Json = {"object": "list", "model": model, "data": data}
    if tokens:
        body["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps(body)


def region_of(other: str, model: str) -> str:
    """The region for `model`: `other` as a region JSON (per model, else `default`), or as a
    plain region name."""
    text = other.strip()
    if not text:
        return DEFAULT_REGION
    try:
        regions: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if not isinstance(regions, dict):
        return DEFAULT_REGION
    region = regions.get(model) or regions.get("default")
    return region if isinstance(region, str) and region else DEFAULT_REGION


def claude_id(model: str) -> str:
    """Vertex names Claude versions `name@date` (`claude-3-7-sonnet@20250219`)."""
    known = CLAUDE_IDS.get(model)
    if known is not None:
        return known
    return DATED.sub(r"@\1", model) if "@" not in model else model


def is_claude(model: str) -> bool:
    return model.startswith("claude")


class VertexAdaptor(anthropic.AnthropicAdaptor):
    """Usage and stream accounting are the Anthropic adaptor's (they read the OpenAI usage
    both conversions write)."""

    native_format = ""  # Claude and Gemini on Vertex have their own rules: converted
    needs_token = True
    default_base_url = ""

    def __init__(self, *, any_token_uri: bool = False) -> None:
        self.tokens = AccessTokens(any_token_uri=any_token_uri)

    async def access_token(
        self, key: str, base_url: str, http: aiohttp.ClientSession, proxy: str
    ) -> str:
        return await self.tokens.token(key)

    def build_request(self, target: Target, body: Outgoing) -> UpstreamRequest:
        only(target.endpoint, CHAT, EMBEDDINGS)
        canonical = canonical_body(body)
        account = account_of(target.key)
        if target.endpoint is EMBEDDINGS:
            native, model = to_predict_embeddings(canonical), target.model
            publisher, action = "google", "predict"
        elif is_claude(target.model):
            messages = anthropic.to_messages(canonical, target.model, target.providers)
            model = claude_id(str(messages.pop("model")))
            native = {"anthropic_version": CLAUDE_VERSION, **messages}
            if target.stream:
                native["stream"] = True
            publisher = "anthropic"
            action = "streamRawPredict" if target.stream else "rawPredict"
        else:
            native, model = gemini.to_generate(canonical, target.model, target.providers)
            publisher = "google"
            action = "streamGenerateContent?alt=sse" if target.stream else "generateContent"
        region = region_of(target.channel.other, target.model)
        host = (
            "aiplatform.googleapis.com"
            if region == "global"
            else f"{region}-aiplatform.googleapis.com"
        )
        root = target.channel.base_url.rstrip("/") or f"https://{host}"
        url = (
            f"{root}/v1/projects/{account['project_id']}/locations/{region}"
            f"/publishers/{publisher}/models/{model}:{action}"
        )
        headers = {
            "Authorization": f"Bearer {target.token}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if target.stream else "application/json",
        }
        return UpstreamRequest(url, headers, orjson.dumps(native))

    def convert_response(self, target: Target, data: bytes) -> bytes:
        try:
            answer = orjson.loads(data)
        except orjson.JSONDecodeError:
            return data
        if not isinstance(answer, dict):
            return data
        if target.endpoint is EMBEDDINGS:
            return embeddings_of(answer, target.model)
        if is_claude(target.model):
            if answer.get("type") != "message":
                return data
            return anthropic.to_completion(answer, target.model)
        if "candidates" not in answer and "promptFeedback" not in answer:
            return data
        return gemini.to_completion(answer, target.model)

    def stream_converter(self, target: Target) -> StreamConverter:
        if is_claude(target.model):
            return anthropic.MessageStream(target.model)
        return gemini.GenerateStream(target.model)

    def parse_error(self, status: int, body: bytes) -> tuple[str, Json | None]:
        return gemini.parse_error(status, body)
