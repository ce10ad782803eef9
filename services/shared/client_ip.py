"""The client's address behind reverse proxies, shared by the relay and the web console.

Forwarding headers are believed only from a peer inside TRUSTED_PROXIES (CIDRs), and the
client is the rightmost X-Forwarded-For hop that is not itself a trusted proxy, as uvicorn's
`forwarded_allow_ips` and nginx's `real_ip_recursive` do: a client cannot pick its own address
by sending X-Forwarded-For or X-Real-IP, so IP allow-lists and login throttling hold.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from services.shared.config import Env

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TrustedProxies = tuple[Network, ...]

ENV_NAME = "TRUSTED_PROXIES"
# A proxy on the same host works out of the box (uvicorn's forwarded_allow_ips default).
DEFAULT_TRUSTED_PROXIES = "127.0.0.1/32,::1/128"


def parse_trusted_proxies(text: str) -> TrustedProxies:
    """Comma- or space-separated CIDRs (a bare address is a /32 or /128); ValueError names
    the first bad entry. "none" trusts no proxy at all."""
    entries = [part for part in text.replace(",", " ").split() if part]
    if entries == ["none"]:
        return ()
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{ENV_NAME}: {entry!r} is not an IP address or CIDR") from None
    return tuple(networks)


def load_trusted_proxies(env: Env) -> TrustedProxies:
    """TRUSTED_PROXIES for a service's settings; a malformed value fails the settings (the
    service does not start)."""
    try:
        return parse_trusted_proxies(env.str(ENV_NAME, DEFAULT_TRUSTED_PROXIES))
    except ValueError as exc:
        env.fail(str(exc))
        return ()


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def is_trusted(peer: str, trusted: TrustedProxies) -> bool:
    address = _address(peer)
    return address is not None and any(address in network for network in trusted)


def _rightmost_untrusted(peer: str, forwarded_for: str, trusted: TrustedProxies) -> str:
    """Walk the chain from the proxy nearest to us outwards; the first hop that is not a
    trusted proxy is the client. A malformed hop ends the walk at the last trusted one."""
    client = peer
    for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
        address = _address(hop)
        if address is None:
            return client
        client = str(address)
        if not any(address in network for network in trusted):
            return client
    return client


def client_address(
    peer: str, headers: Mapping[str, str], *, provider: str, trusted: TrustedProxies
) -> str:
    """The client's address. `provider` is the ReverseProxyProvider option ("" when the
    ReverseProxyEnabled option is off: the peer itself): "cloudflare" reads
    CF-Connecting-IP, anything else X-Forwarded-For (then X-Real-IP) — each only when the peer
    is a trusted proxy."""
    if not provider or not is_trusted(peer, trusted):
        return peer
    if provider == "cloudflare":
        address = _address(headers.get("cf-connecting-ip", ""))
        return str(address) if address is not None else peer
    forwarded_for = headers.get("x-forwarded-for", "")
    if forwarded_for.strip():
        return _rightmost_untrusted(peer, forwarded_for, trusted)
    address = _address(headers.get("x-real-ip", ""))
    return str(address) if address is not None else peer


def forwarded_https(peer: str, headers: Mapping[str, str], trusted: TrustedProxies) -> bool:
    """A trusted proxy says the client spoke HTTPS to it (X-Forwarded-Proto: https)."""
    if not is_trusted(peer, trusted):
        return False
    proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return proto == "https"
