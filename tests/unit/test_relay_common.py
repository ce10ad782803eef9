"""Key sources (upstream `middleware/auth.go`) and the reverse-proxy-aware client IP (upstream's
reverse-proxy options).
"""

from __future__ import annotations

import pytest
from starlette.requests import Request

from services.relay.client import client_ip, read_body, read_key
from services.relay.endpoints import TRANSCRIPTIONS
from services.relay.errors import RelayError
from services.relay.incoming import parse_form_request
from services.relay.settings import load_settings
from services.shared.config import ConfigError

ENV = {"NATS_URL": "nats://127.0.0.1:4222", "INTERNAL_TOKEN_RELAY": "r" * 32}


def request(headers: dict[str, str], peer: str = "10.0.0.9") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "headers": raw, "client": (peer, 1234)})


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer sk-abc"},
        {"Authorization": "abc"},
        {"x-api-key": "sk-abc"},
        {"mj-api-secret": "sk-abc"},
        {"Authorization": "midjourney-proxy", "mj-api-secret": "abc"},
    ],
)
def test_key_sources(headers: dict[str, str]) -> None:
    parsed = read_key(request(headers))
    assert parsed.key == "abc" and parsed.channel_id is None


def test_pinned_channel_and_missing_key() -> None:
    assert read_key(request({"x-api-key": "sk-abc-12"})).channel_id == 12
    with pytest.raises(RelayError) as info:
        read_key(request({}))
    assert info.value.status == 401


def test_client_ip_behind_proxies() -> None:
    forwarded = {"X-Forwarded-For": "1.2.3.4, 203.0.113.7", "CF-Connecting-IP": "5.6.7.8"}
    proxy = "127.0.0.1"
    trusted = load_settings(ENV).trusted_proxies  # TRUSTED_PROXIES defaults to loopback
    assert client_ip(request(forwarded, proxy), "", trusted) == proxy  # not believed unless on
    assert client_ip(request(forwarded, proxy), "nginx", trusted) == "203.0.113.7"  # rightmost
    assert client_ip(request({"X-Real-IP": "9.9.9.9"}, proxy), "nginx", trusted) == "9.9.9.9"
    assert client_ip(request(forwarded, proxy), "cloudflare", trusted) == "5.6.7.8"
    assert client_ip(request({}, proxy), "cloudflare", trusted) == proxy
    # A peer that is not a trusted proxy cannot pick its address (IP allow-lists hold).
    assert client_ip(request(forwarded), "nginx", trusted) == "10.0.0.9"
    assert client_ip(request(forwarded), "cloudflare", trusted) == "10.0.0.9"
    # The relay's own TRUSTED_PROXIES (its settings): a proxy on the private network.
    private = load_settings({**ENV, "TRUSTED_PROXIES": "10.0.0.0/8"}).trusted_proxies
    assert client_ip(request(forwarded), "nginx", private) == "203.0.113.7"


def test_a_malformed_trusted_proxies_stops_the_relay_at_start() -> None:
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        load_settings({**ENV, "TRUSTED_PROXIES": "10.0.0.0/33"})


async def test_body_over_the_limit_is_413() -> None:
    chunks = [b"x" * 600, b"y" * 600]

    async def receive() -> dict[str, object]:
        body = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    scope = {"type": "http", "method": "POST", "headers": []}
    with pytest.raises(RelayError) as info:
        await read_body(Request(scope, receive), 1000)
    assert info.value.status == 413 and info.value.code == "request_too_large"
    declared = Request({"type": "http", "headers": [(b"content-length", b"5000")]})
    with pytest.raises(RelayError):
        await read_body(declared, 1000)


async def test_form_endpoint_needs_multipart() -> None:
    with pytest.raises(RelayError) as info:
        await parse_form_request(TRANSCRIPTIONS, b"{}", "application/json")
    assert info.value.code == "unsupported_content_type"
    with pytest.raises(RelayError) as info:
        await parse_form_request(
            TRANSCRIPTIONS, b"--b\r\nbroken", "multipart/form-data; boundary=b"
        )
    assert info.value.status == 400
