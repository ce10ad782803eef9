"""Which header names the client behind a reverse proxy (web.client_ip.forwarded_ip)."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from services.web.client_ip import forwarded_ip


@pytest.mark.parametrize(
    ("provider", "headers", "expected"),
    [
        ("nginx", {"x-real-ip": "203.0.113.9", "x-forwarded-for": "198.51.100.1"}, "203.0.113.9"),
        ("nginx", {"x-forwarded-for": " 198.51.100.1 , 10.0.0.1"}, "198.51.100.1"),
        ("nginx", {"x-real-ip": "junk", "x-forwarded-for": "198.51.100.1"}, "198.51.100.1"),
        ("nginx", {"cf-connecting-ip": "203.0.113.9"}, ""),
        ("nginx", {"x-forwarded-for": "unknown, 198.51.100.1"}, ""),
        ("cloudflare", {"cf-connecting-ip": "2001:db8::5"}, "2001:db8::5"),
        ("cloudflare", {"x-real-ip": "203.0.113.9"}, ""),
        ("cloudflare", {"cf-connecting-ip": "2001:DB8:0::5"}, "2001:db8::5"),
        ("nginx", {}, ""),
    ],
)
def test_forwarded_ip(provider: str, headers: dict[str, str], expected: str) -> None:
    assert forwarded_ip(Headers(headers), provider) == expected
