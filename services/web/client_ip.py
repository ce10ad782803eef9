"""The client's IP as the web console sees it (login throttling, rate limits, cookies):
the ReverseProxyEnabled / ReverseProxyProvider options say whether a proxy is in front, and
TRUSTED_PROXIES which peers may speak for the client (services.shared.client_ip)."""

from __future__ import annotations

import logging

import grpc
from starlette.requests import HTTPConnection

from services.shared.client_ip import client_address, forwarded_https
from services.web.deps import Deps
from services.web.options_cache import options_cache

logger = logging.getLogger(__name__)


def _peer(request: HTTPConnection) -> str:
    return request.client.host if request.client else ""


async def client_ip(request: HTTPConnection, deps: Deps) -> str:
    """The peer address, or the one a trusted proxy reports when the reverse-proxy option
    is on."""
    peer = _peer(request)
    try:
        options = await options_cache(request).get(deps)
    except grpc.aio.AioRpcError as exc:
        logger.warning("cannot read the reverse-proxy options: %s", exc.code())
        return peer
    provider = ""
    if options.get("ReverseProxyEnabled") == "true":
        provider = options.get("ReverseProxyProvider") or "nginx"
    return client_address(
        peer, request.headers, provider=provider, trusted=deps.settings.trusted_proxies
    )


def over_https(request: HTTPConnection, deps: Deps) -> bool:
    """The client reached us over HTTPS: directly, or as a trusted proxy says."""
    if request.url.scheme == "https":
        return True
    return forwarded_https(_peer(request), request.headers, deps.settings.trusted_proxies)
