"""Which upstream addresses are private (loopback, RFC 1918, link-local, ...).

A channel's base URL or proxy decides where its key is sent. Unless the operator allows
private addresses (CHANNEL_PRIVATE_ADDRESSES, on in `veloera up`'s local mode), accounts
refuses to save one and the relay refuses to connect to one, so a console admin cannot point
a channel at an internal service (or read one's answers through the relay).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LOCAL_NAMES = ("localhost", "localhost.localdomain")


def parse_ip(host: str) -> IpAddress | None:
    """The address a literal host stands for, legacy IPv4 forms (`127.1`, `2130706433`,
    `0x7f.0.0.1`) included, since resolvers accept them too; None for a name."""
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def is_private_ip(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def is_private_host(host: str) -> bool:
    """A literal private address or a local name (names are checked again once resolved)."""
    lowered = host.lower().rstrip(".")
    if lowered in LOCAL_NAMES or lowered.endswith(".localhost"):
        return True
    address = parse_ip(lowered)
    return address is not None and is_private_ip(address)


def url_is_private(url: str) -> bool:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return bool(host) and is_private_host(host or "")
