"""A DNS resolver for aiohttp that refuses private addresses (the name-resolution half of the
outbound-URL guard; services/shared/addresses.py checks literal hosts)."""

from __future__ import annotations

import ipaddress
import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from services.shared.addresses import is_private_ip


class PublicResolver(AbstractResolver):
    """Resolves names to public addresses only: a host whose name resolves to a private or
    loopback address is not connected to (relay upstreams with CHANNEL_PRIVATE_ADDRESSES=false,
    notification webhooks with WEBHOOK_PRIVATE_ADDRESSES=false). Called on DNS-cache misses
    only; literal addresses are checked by the caller before connecting."""

    def __init__(self) -> None:
        self._inner = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [item for item in found if not is_private_ip(ipaddress.ip_address(item["host"]))]
        if not public:
            raise OSError(f"{host} resolves to a private address")
        return public

    async def close(self) -> None:
        await self._inner.close()
