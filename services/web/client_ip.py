"""The client's IP for login throttling, honouring ReverseProxyEnabled / ReverseProxyProvider."""

from __future__ import annotations

import ipaddress
import logging

import grpc
from starlette.datastructures import Headers
from starlette.requests import Request

from services.web.deps import Deps
from services.web.options_cache import options_cache

logger = logging.getLogger(__name__)


def _valid_ip(value: str) -> str:
    value = value.strip()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return ""


def forwarded_ip(headers: Headers, provider: str) -> str:
    """The address the proxy reports: cloudflare -> CF-Connecting-IP; nginx -> X-Real-IP,
    else the first X-Forwarded-For entry. '' when absent or not an IP address."""
    if provider == "cloudflare":
        return _valid_ip(headers.get("cf-connecting-ip", ""))
    real_ip = _valid_ip(headers.get("x-real-ip", ""))
    if real_ip:
        return real_ip
    first = headers.get("x-forwarded-for", "").split(",")[0]
    return _valid_ip(first)


async def client_ip(request: Request, deps: Deps) -> str:
    """The peer address, or the proxy-reported one when the reverse-proxy option is on."""
    peer = request.client.host if request.client else ""
    try:
        options = await options_cache(request).get(deps)
    except grpc.aio.AioRpcError as exc:
        logger.warning("cannot read the reverse-proxy options: %s", exc.code())
        return peer
    if options.get("ReverseProxyEnabled") != "true":
        return peer
    return forwarded_ip(request.headers, options.get("ReverseProxyProvider", "nginx")) or peer
