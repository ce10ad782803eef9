"""What every relay route and the pipeline read from a client request (its key, address and body,
the key's access) and the per-route response counters."""

from __future__ import annotations

import time

from prometheus_client import Counter
from starlette.requests import HTTPConnection, Request

from services.relay.auth import AuthEntry, ParsedKey, check_access, check_token, parse_key
from services.relay.errors import RelayError
from services.relay.metrics import REQUESTS
from services.relay.state import RelayContext
from services.shared.client_ip import TrustedProxies, client_address
from services.shared.numbers import ascii_int

_counters: dict[tuple[str, str, str, int], Counter] = {}


def count(route: str, status: int, model: str = "", channel: int = 0) -> None:
    key = (route, model, str(channel) if channel else "", status // 100)
    child = _counters.get(key)
    if child is None:
        child = _counters[key] = REQUESTS.labels(route, model, key[2], f"{status // 100}xx")
    child.inc()


def read_key(request: HTTPConnection) -> ParsedKey:
    """Bearer (with or without `sk-`), then `x-api-key`, then `mj-api-secret` (upstream
    `middleware/auth.go`).
    """
    headers = request.headers
    header = headers.get("authorization", "")
    if not header or header == "midjourney-proxy":
        header = headers.get("x-api-key") or headers.get("mj-api-secret") or ""
    if not header:
        raise RelayError(401, "no API key provided", code="invalid_token")
    parsed = parse_key(header)
    if parsed is None:
        raise RelayError(401, "invalid token", code="invalid_token")
    return parsed


def client_ip(request: HTTPConnection, proxy: str, trusted: TrustedProxies) -> str:
    """The client address; `proxy` is the ReverseProxyProvider when ReverseProxyEnabled is on
    (forwarding headers count only from a `trusted` peer, TRUSTED_PROXIES in the settings)."""
    peer = request.client.host if request.client is not None else ""
    return client_address(peer, request.headers, provider=proxy, trusted=trusted)


async def authorise(
    ctx: RelayContext,
    request: HTTPConnection,
    key: ParsedKey,
    model: str | None,
    ip: str | None = None,
) -> AuthEntry:
    entry = await ctx.auth.authenticate(key.key)
    check_token(entry, time.time())
    if ip is None:
        table = ctx.snapshot.table
        proxy = table.options.reverse_proxy if table is not None else ""
        ip = client_ip(request, proxy, ctx.settings.trusted_proxies)
    check_access(entry, model=model, client_ip=ip, pinned=key.channel_id)
    return entry


async def read_body(request: Request, limit: int) -> bytes:
    declared = ascii_int(request.headers.get("content-length", ""))
    if declared is not None and declared > limit:
        raise RelayError(
            413, "request body too large", type_="invalid_request_error", code="request_too_large"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RelayError(
                413,
                "request body too large",
                type_="invalid_request_error",
                code="request_too_large",
            )
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
