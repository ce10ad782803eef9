"""Upstream HTTP: the shared aiohttp session, one attempt's send, failure classification.

The relay talks to providers through aiohttp rather than httpx: on this path httpx spends
~1.8 ms of CPU per request at 64 concurrent requests (its pool scans every connection per
request), aiohttp ~0.1 ms (bench/PROFILE.md). httpx stays for the cold paths (image downloads).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp_socks import ProxyConnector

from services.relay.adaptors.base import ErrorReader, UpstreamRequest, parse_error_body
from services.shared.resolver import PublicResolver

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # seconds to get a pooled connection or open a new one
PROXY_SCHEMES = ("http://", "https://")
# Every way an upstream exchange can break, besides TimeoutError (which aiohttp's own
# connect/read timeouts subclass too).
UPSTREAM_ERRORS = (aiohttp.ClientError, OSError)


class UpstreamFailure(Exception):
    """An attempt that produced no usable reply.

    kind: "status" (non-2xx answer), "connection", "timeout" or "empty".
    """

    def __init__(
        self,
        kind: str,
        status: int,
        message: str,
        *,
        error: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.message = message
        self.error = error  # the upstream's OpenAI error object, when it sent one

    @property
    def retryable(self) -> bool:
        return self.kind != "status" or self.status >= 500


def read_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """Connect within CONNECT_TIMEOUT; then at most `seconds` between two reads."""
    return aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_read=seconds)


def open_session(*, allow_private: bool = True) -> aiohttp.ClientSession:
    """The process's upstream session: keep-alive pool, no environment proxies, no redirects
    followed (set per request), answers decompressed. Close it with `await session.close()`."""
    connector = aiohttp.TCPConnector(
        limit=4096,
        limit_per_host=0,
        keepalive_timeout=60.0,
        ttl_dns_cache=60,
        resolver=None if allow_private else PublicResolver(),
    )
    return aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True)


SOCKS_SCHEMES = ("socks5://", "socks5h://")


def usable_proxy(proxy: str) -> bool:
    """HTTP(S) forward proxies (aiohttp's own) and SOCKS5 proxies (aiohttp-socks)."""
    return proxy.lower().startswith(PROXY_SCHEMES + SOCKS_SCHEMES)


class Sessions:
    """The relay's upstream sessions: the shared one (direct, or through an HTTP(S) proxy given
    per request), and one per SOCKS5 proxy, made on first use (a SOCKS proxy is part of the
    connector, not of the request). `socks5h://` resolves names at the proxy."""

    def __init__(self, shared: aiohttp.ClientSession) -> None:
        self.shared = shared
        self._socks: dict[str, aiohttp.ClientSession] = {}

    def route(self, proxy: str) -> tuple[aiohttp.ClientSession, str]:
        """The session to send through and the per-request proxy argument for it."""
        if not proxy.lower().startswith(SOCKS_SCHEMES):
            return self.shared, proxy
        session = self._socks.get(proxy)
        if session is None:
            rdns = proxy.lower().startswith("socks5h://")
            url = "socks5://" + proxy.split("://", 1)[1] if rdns else proxy
            connector = ProxyConnector.from_url(url, rdns=rdns, limit=1024, keepalive_timeout=60.0)
            session = aiohttp.ClientSession(
                connector=connector, trust_env=False, auto_decompress=True
            )
            self._socks[proxy] = session
        return session, ""

    async def close_proxies(self) -> None:
        """Close the SOCKS sessions (the shared one stays open)."""
        for session in self._socks.values():
            await session.close()
        self._socks.clear()

    async def close(self) -> None:
        await self.close_proxies()
        await self.shared.close()


@contextlib.asynccontextmanager
async def through(
    session: aiohttp.ClientSession, proxy: str
) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """For one-off calls (channel tests, balances): `session` with `proxy` as the per-request
    proxy, or a SOCKS session made for the call and closed after it."""
    sessions = Sessions(session)
    try:
        yield sessions.route(proxy)
    finally:
        await sessions.close_proxies()


def failure_of(exc: BaseException) -> UpstreamFailure:
    """The failure an exception raised while talking to the upstream stands for."""
    if isinstance(exc, TimeoutError):
        return UpstreamFailure("timeout", 504, "upstream timed out")
    return UpstreamFailure("connection", 502, f"upstream connection failed: {type(exc).__name__}")


async def open_upstream(
    session: aiohttp.ClientSession,
    request: UpstreamRequest,
    timeout: aiohttp.ClientTimeout,
    proxy: str = "",
    read_error: ErrorReader = parse_error_body,
) -> aiohttp.ClientResponse:
    """Send and return the open 2xx response (body not read yet); the caller must
    `release()` it. Anything else raises UpstreamFailure (`read_error`: how the provider's error
    body reads)."""
    try:
        response = await session.post(
            request.url,
            data=request.body,
            headers=request.headers,
            timeout=timeout,
            proxy=proxy or None,
            allow_redirects=False,
        )
    except (TimeoutError, ValueError, *UPSTREAM_ERRORS) as exc:  # ValueError: a bad URL
        raise failure_of(exc) from None
    if 200 <= response.status < 300:
        return response
    if 300 <= response.status < 400:  # never followed, and useless to a client: a bad gateway
        response.release()
        raise UpstreamFailure("status", 502, f"upstream answered a redirect ({response.status})")
    try:
        body = await response.read()
    except (TimeoutError, *UPSTREAM_ERRORS):
        body = b""
    finally:
        response.release()
    message, error = read_error(response.status, body)
    raise UpstreamFailure("status", response.status, message, error=error)
