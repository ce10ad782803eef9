"""Calls to a channel's upstream outside the relay's request path: the test request, the balance
query and the model list (upstream `controller/channel-test.go`, `controller/channel-billing.go`,
`controller/channel.go` FetchUpstreamModels).

The test request goes through the relay's own adaptors (base URL, path prefix, auth headers,
model mapping, param override, proxy), so a test exercises what a relayed request would. Every
call is bounded by `timeout` seconds; a channel whose base URL or proxy is a private address is
refused unless the operator allows those (CHANNEL_PRIVATE_ADDRESSES), as the relay does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
from veloera.accounts.v1 import accounts_pb2

from services.relay import endpoints
from services.relay.adaptors import Adaptors
from services.relay.adaptors.base import Outgoing, Target, parse_error_body
from services.relay.adaptors.native import ProviderError
from services.relay.routing.table import ChannelInfo, channel_from_proto
from services.relay.upstream import shaping
from services.relay.upstream.http import (
    UPSTREAM_ERRORS,
    UpstreamFailure,
    failure_of,
    open_session,
    open_upstream,
    through,
    usable_proxy,
)
from services.relay.upstream.scrub import scrub
from services.relay.upstream.websocket import WebSocketAnswer, open_websocket
from services.shared.channel_types import (
    AIGC2D,
    API2GPT,
    BALANCE_TYPES,
    CUSTOM,
    OPENAI,
    OPENROUTER,
    SILICONFLOW,
    is_supported,
)

__all__ = ["ProbeError", "list_models", "open_session", "probe_key", "query_balance"]

ANTHROPIC = 14
GEMINI = 24
GITHUB = 49
GITHUB_CATALOG = "https://models.github.ai/catalog/models"
DEFAULT_TEST_MODEL = "gpt-4o-mini"
_EMBEDDING_HINTS = ("embedding", "m3e", "bge-", "embed")
MODELS = endpoints.Endpoint("models", "/v1/models")
_ADAPTORS = Adaptors()


class ProbeError(Exception):
    """A probe that could not be made or whose answer was unusable; the message is for admins
    (never carries a key)."""


@dataclass(frozen=True, slots=True)
class KeyTestResult:
    """One test request through one key."""

    key_id: int
    key_index: int
    model: str
    success: bool
    response_ms: int
    status_code: int = 0
    error_type: str = ""
    error_code: str = ""
    message: str = ""
    local_error: bool = False  # not sent (configuration): says nothing about the key


def pick_test_model(channel: accounts_pb2.Channel, chosen: str = "") -> str:
    """explicit -> the channel's test model -> its first model -> gpt-4o-mini."""
    for name in (chosen, channel.test_model, *channel.models[:1]):
        if name.strip():
            return name.strip()
    return DEFAULT_TEST_MODEL


def build_test_body(model: str, channel_type: int) -> tuple[endpoints.Endpoint, dict[str, Any]]:
    """upstream `testChannel`: "hi" with a small max_tokens; embeddings get "hello world"."""
    lowered = model.lower()
    if any(hint in lowered for hint in _EMBEDDING_HINTS):
        return endpoints.EMBEDDINGS, {"model": model, "input": "hello world"}
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if shaping.is_o_series(lowered):
        body["max_completion_tokens"] = 10
    elif channel_type == GEMINI:
        body["max_tokens"] = 300
    elif "thinking" in lowered:
        body["max_tokens"] = 50
    else:
        body["max_tokens"] = 10
    return endpoints.CHAT, body


def _checked(channel: accounts_pb2.Channel, *, allow_private: bool) -> ChannelInfo:
    info = channel_from_proto(channel)
    if info.private_target and not allow_private:
        raise ProbeError(
            "the channel's base URL or proxy is a private address (CHANNEL_PRIVATE_ADDRESSES)"
        )
    if info.setting.proxy and not usable_proxy(info.setting.proxy):
        raise ProbeError("the channel's proxy scheme is not supported")
    return info


async def probe_key(
    session: aiohttp.ClientSession,
    channel: accounts_pb2.Channel,
    key: accounts_pb2.ChannelKey,
    *,
    model: str,
    timeout: float,
    allow_private: bool,
) -> KeyTestResult:
    """Send the test request through `key` and time it (ms, until the whole answer is read)."""
    started = time.monotonic()

    def result(success: bool, **fields: Any) -> KeyTestResult:
        elapsed = int((time.monotonic() - started) * 1000)
        return KeyTestResult(key.id, key.index, model, success, elapsed, **fields)

    try:
        info = _checked(channel, allow_private=allow_private)
        adaptor = _ADAPTORS.for_type(channel.type)
    except (ProbeError, LookupError) as exc:
        return result(False, message=str(exc), local_error=True)
    endpoint, body = build_test_body(model, channel.type)
    upstream_model = info.upstream_model(model)
    body["model"] = upstream_model
    shaping.apply_param_override(body, info)
    try:
        async with through(session, info.setting.proxy) as (via, proxy):
            token = ""
            if adaptor.needs_token:  # Vertex AI, Baidu: the key buys an access token first
                token = await adaptor.access_token(key.key, info.base_url, via, proxy)
            target = Target(info, key.key, upstream_model, endpoint, False, token=token)
            request = adaptor.build_request(target, Outgoing(json=body))
            response: aiohttp.ClientResponse | WebSocketAnswer
            if adaptor.transport == "websocket":  # iFlytek Spark
                response = await open_websocket(via, request, timeout, proxy)
            else:
                response = await open_upstream(
                    via, request, aiohttp.ClientTimeout(total=timeout), proxy
                )
            try:
                data = await response.read()
            finally:
                response.release()
    except UpstreamFailure as failure:
        return _failed(result, failure, key.key)
    except ProviderError as exc:
        return _failed(result, UpstreamFailure("status", exc.status, exc.message), key.key)
    except (TimeoutError, *UPSTREAM_ERRORS) as exc:
        return _failed(result, failure_of(exc), key.key)
    try:
        payload = orjson.loads(adaptor.convert_response(target, data))
    except ProviderError as exc:  # an error inside a 2xx answer (Baidu, Tencent)
        inside = UpstreamFailure("status", exc.status, exc.message, error=exc.error)
        return _failed(result, inside, key.key)
    except (orjson.JSONDecodeError, ValueError):
        return result(False, status_code=200, message="the upstream's answer is not JSON")
    if not isinstance(payload, dict) or "error" in payload:
        message, error = parse_error_body(200, data)
        return _failed(result, UpstreamFailure("status", 200, message, error=error), key.key)
    return result(True, status_code=200)


def _failed(
    result: Callable[..., KeyTestResult], failure: UpstreamFailure, key: str
) -> KeyTestResult:
    """The failed result; the upstream's message without the key or addresses it may quote."""
    error = failure.error or {}
    code = error.get("code")
    kind = error.get("type")
    return result(
        False,
        status_code=failure.status,
        error_type=kind if isinstance(kind, str) else "",
        error_code=code if isinstance(code, str) else "",
        message=scrub(failure.message, [key]),
    )


# ---------------------------------------------------------------- GET helpers


def _base_url(channel: accounts_pb2.Channel, default: str = "") -> str:
    if channel.base_url.strip():
        return channel.base_url.strip().rstrip("/")
    adaptor = _ADAPTORS.for_type(channel.type) if is_supported(channel.type) else None
    found = getattr(adaptor, "default_base_url", "") if adaptor is not None else ""
    return str(found or default).rstrip("/")


def first_key(channel: accounts_pb2.Channel) -> str:
    """The first usable key: enabled keys first (a list with keys), else the entered text."""
    enabled = accounts_pb2.CHANNEL_STATUS_ENABLED
    keys = sorted(channel.keys, key=lambda k: (k.status != enabled, k.index))
    for key in keys:
        if key.key:
            return key.key
    for part in channel.key.replace(",", "\n").splitlines():
        if part.strip():
            return part.strip()
    raise ProbeError("the channel has no key")


async def _get_json(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    *,
    timeout: float,
    proxy: str,
    key: str,
) -> Any:
    """GET `url` and decode its JSON; any failure is a ProbeError with the upstream's message
    (scrubbed of the key and of addresses)."""
    try:
        async with (
            through(session, proxy) as (via, http_proxy),
            via.get(
                url,
                headers={**headers, "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=timeout),
                proxy=http_proxy or None,
                allow_redirects=False,
            ) as response,
        ):
            data = await response.read()
            status = response.status
    except (TimeoutError, ValueError, *UPSTREAM_ERRORS) as exc:
        raise ProbeError(failure_of(exc).message) from None
    if status != 200:
        message, _ = parse_error_body(status, data)
        raise ProbeError(f"upstream answered {status}: {scrub(message, [key])}")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ProbeError("the upstream's answer is not JSON") from None


# ---------------------------------------------------------------- balance


async def query_balance(
    session: aiohttp.ClientSession,
    channel: accounts_pb2.Channel,
    *,
    timeout: float,
    allow_private: bool,
) -> float:
    """The channel's remaining balance (USD) from its provider's billing API."""
    if channel.type not in BALANCE_TYPES:
        raise ProbeError("this channel type has no balance query")
    info = _checked(channel, allow_private=allow_private)
    key = first_key(channel)
    base = _base_url(channel)
    if not base:
        raise ProbeError("the channel has no base URL")
    auth = {"Authorization": f"Bearer {key}"}

    async def get(url: str) -> Any:
        return await _get_json(
            session, url, auth, timeout=timeout, proxy=info.setting.proxy, key=key
        )

    if channel.type in (OPENAI, CUSTOM):
        return await _openai_balance(get, base)
    if channel.type in (API2GPT, AIGC2D):
        return _number(_field(await get(f"{base}/dashboard/billing/credit_grants")),
                       "total_remaining")  # fmt: skip
    if channel.type == OPENROUTER:
        data = _field(await get(f"{base}/v1/credits"), "data")
        return _number(data, "total_credits") - _number(data, "total_usage")
    if channel.type == SILICONFLOW:
        return _number(_field(await get(f"{base}/v1/user/info"), "data"), "totalBalance")
    return _deepseek_balance(await get(f"{base}/user/balance"))


async def _openai_balance(get: Any, base: str) -> float:
    """upstream `updateChannelBalance`: the subscription's hard limit minus the usage since the
    month's start (the last 100 days without a payment method); usage is in cents."""
    subscription = _field(await get(f"{base}/v1/dashboard/billing/subscription"))
    today = datetime.now(UTC).date()
    start = today.replace(day=1)
    if not subscription.get("has_payment_method"):
        start = today - timedelta(days=100)
    usage = _field(
        await get(
            f"{base}/v1/dashboard/billing/usage?start_date={start.isoformat()}"
            f"&end_date={today.isoformat()}"
        )
    )
    return _number(subscription, "hard_limit_usd") - _number(usage, "total_usage") / 100


def _deepseek_balance(payload: Any) -> float:
    """DeepSeek's balance_infos: the USD entry, else the CNY one (upstream reads CNY)."""
    infos = _field(payload).get("balance_infos")
    by_currency = {info.get("currency"): info for info in infos or () if isinstance(info, dict)}
    for currency in ("USD", "CNY"):
        if currency in by_currency:
            return _number(by_currency[currency], "total_balance")
    raise ProbeError("the upstream's balance has no USD or CNY entry")


def _field(payload: Any, name: str = "") -> dict[str, Any]:
    value = payload.get(name) if name and isinstance(payload, dict) else payload
    if not isinstance(value, dict):
        raise ProbeError("the upstream's balance answer has an unexpected shape")
    return value


def _number(payload: dict[str, Any], name: str) -> float:
    value = payload.get(name, 0)
    try:
        number = float(value) if isinstance(value, int | float | str) else float("nan")
    except ValueError:
        number = float("nan")
    if number != number or isinstance(value, bool):
        raise ProbeError(f"the upstream's balance field {name} is not a number")
    return number


# ---------------------------------------------------------------- models


async def list_models(
    session: aiohttp.ClientSession,
    channel: accounts_pb2.Channel,
    *,
    timeout: float,
    allow_private: bool,
) -> list[str]:
    """The upstream's model ids (`/v1/models`; Gemini's OpenAI-compatible list, Anthropic's
    list with x-api-key, other types through their adaptor's path prefix and auth)."""
    info = _checked(channel, allow_private=allow_private)
    key = first_key(channel)
    url, headers = _models_request(channel, info, key)
    if not url.startswith(("http://", "https://")):
        raise ProbeError("the channel has no base URL")
    payload = await _get_json(
        session, url, headers, timeout=timeout, proxy=info.setting.proxy, key=key
    )
    return _model_ids(payload)


def _models_request(
    channel: accounts_pb2.Channel, info: ChannelInfo, key: str
) -> tuple[str, dict[str, str]]:
    if channel.type == ANTHROPIC:
        base = _base_url(channel, "https://api.anthropic.com")
        return f"{base}/v1/models", {"x-api-key": key, "anthropic-version": "2023-06-01"}
    if channel.type == GEMINI:
        base = _base_url(channel, "https://generativelanguage.googleapis.com")
        return f"{base}/v1beta/openai/models", {"Authorization": f"Bearer {key}"}
    if channel.type == GITHUB and not channel.base_url.strip():
        return GITHUB_CATALOG, {"Authorization": f"Bearer {key}"}  # a bare list of models
    try:
        adaptor = _ADAPTORS.for_type(channel.type)
    except LookupError:
        raise ProbeError("this channel type cannot list its models") from None
    request = adaptor.build_request(Target(info, key, "", MODELS, stream=False), Outgoing(json={}))
    headers = dict(request.headers)
    headers.pop("Content-Type", None)
    return request.url, headers


def _model_ids(payload: Any) -> list[str]:
    """`{"data": [{"id": …}]}` (or a bare list, as GitHub's catalog); Gemini's `models/` prefix
    is dropped."""
    items = payload.get("data") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise ProbeError("the upstream's model list has an unexpected shape")
    ids: list[str] = []
    for item in items:
        name = item.get("id") if isinstance(item, dict) else None
        if isinstance(name, str) and name.strip():
            name = name.strip().removeprefix("models/")
            if name not in ids:
                ids.append(name)
    return ids
