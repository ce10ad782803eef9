"""Which address is the client behind reverse proxies (services.shared.client_ip), as the
web console's login throttling and the relay's IP allow-lists see it."""

from __future__ import annotations

import pytest

from services.shared.client_ip import (
    client_address,
    forwarded_https,
    parse_trusted_proxies,
)

TRUSTED = parse_trusted_proxies("10.0.0.0/8, 127.0.0.1 ::1")


@pytest.mark.parametrize(
    ("peer", "provider", "headers", "expected"),
    [
        # The leftmost hop is whatever the client wrote: the rightmost untrusted one counts.
        ("10.0.0.2", "nginx", {"x-forwarded-for": "6.6.6.6, 198.51.100.1"}, "198.51.100.1"),
        ("10.0.0.2", "nginx", {"x-forwarded-for": "198.51.100.1, 10.0.0.7"}, "198.51.100.1"),
        ("10.0.0.2", "nginx", {"x-forwarded-for": "10.0.0.8, 10.0.0.7"}, "10.0.0.8"),
        ("10.0.0.2", "nginx", {"x-forwarded-for": "junk, 10.0.0.7"}, "10.0.0.7"),
        ("10.0.0.2", "nginx", {"x-real-ip": "203.0.113.9"}, "203.0.113.9"),
        ("10.0.0.2", "nginx", {"x-real-ip": "junk"}, "10.0.0.2"),
        ("10.0.0.2", "nginx", {}, "10.0.0.2"),
        ("10.0.0.2", "cloudflare", {"cf-connecting-ip": "2001:DB8:0::5"}, "2001:db8::5"),
        ("10.0.0.2", "cloudflare", {"x-forwarded-for": "203.0.113.9"}, "10.0.0.2"),
        # An untrusted peer cannot speak for anybody else.
        ("198.51.100.3", "nginx", {"x-forwarded-for": "1.2.3.4"}, "198.51.100.3"),
        ("198.51.100.3", "nginx", {"x-real-ip": "1.2.3.4"}, "198.51.100.3"),
        ("198.51.100.3", "cloudflare", {"cf-connecting-ip": "1.2.3.4"}, "198.51.100.3"),
        # ReverseProxyEnabled off: the peer, whatever it sends.
        ("10.0.0.2", "", {"x-forwarded-for": "1.2.3.4"}, "10.0.0.2"),
        ("::1", "nginx", {"x-forwarded-for": "2001:db8::9"}, "2001:db8::9"),
    ],
)
def test_client_address(peer: str, provider: str, headers: dict[str, str], expected: str) -> None:
    assert client_address(peer, headers, provider=provider, trusted=TRUSTED) == expected


def test_trusted_proxies_parsing() -> None:
    assert parse_trusted_proxies("none") == ()
    assert len(parse_trusted_proxies("192.168.0.0/16,2001:db8::/32 127.0.0.1")) == 3
    with pytest.raises(ValueError, match="not-an-ip"):
        parse_trusted_proxies("10.0.0.0/8,not-an-ip")


def test_https_only_from_a_trusted_proxy() -> None:
    https = {"x-forwarded-proto": "https"}
    assert forwarded_https("10.1.2.3", https, TRUSTED)
    assert not forwarded_https("198.51.100.3", https, TRUSTED)
    assert not forwarded_https("10.1.2.3", {"x-forwarded-proto": "http"}, TRUSTED)
