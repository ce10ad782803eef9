"""Upstream attempts against a loopback HTTP server: success, failure classes, error bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from services.cli.infra import free_port
from services.relay.adaptors.base import UpstreamRequest, parse_error_body
from services.relay.upstream.http import (
    UpstreamFailure,
    open_session,
    open_upstream,
    read_timeout,
    usable_proxy,
)

TIMEOUT = read_timeout(5.0)


class Upstream:
    """A loopback upstream whose next answer the test chooses."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b'{"ok": true}'
        self.delay = 0.0
        self.seen: list[web.Request] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, body=self.body, content_type="application/json")

    def request(self, path: str = "/v1/chat/completions") -> UpstreamRequest:
        return UpstreamRequest(self.url + path, {"Authorization": "Bearer k"}, b"{}")


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    fake = Upstream()
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


async def _failure(
    session: aiohttp.ClientSession,
    request: UpstreamRequest,
    timeout: aiohttp.ClientTimeout = TIMEOUT,
) -> UpstreamFailure:
    with pytest.raises(UpstreamFailure) as info:
        await open_upstream(session, request, timeout)
    return info.value


async def test_success_returns_the_open_response_with_our_headers(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    response = await open_upstream(session, upstream.request(), TIMEOUT)
    assert orjson.loads(await response.read()) == {"ok": True}
    response.release()
    assert upstream.seen[0].headers["authorization"] == "Bearer k"


async def test_5xx_is_retryable_and_keeps_the_upstream_message(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    error = {"message": "overloaded", "type": "server_error", "code": "x"}
    upstream.status, upstream.body = 503, orjson.dumps({"error": error})
    failure = await _failure(session, upstream.request())
    assert failure.retryable and failure.status == 503 and failure.kind == "status"
    assert failure.message == "overloaded" and failure.error == error


async def test_4xx_is_not_retryable(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    upstream.status, upstream.body = 400, b'{"error": {"message": "bad"}}'
    failure = await _failure(session, upstream.request())
    assert not failure.retryable and failure.status == 400 and failure.message == "bad"


async def test_refused_connection_and_read_timeout_are_retryable(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    closed = UpstreamRequest(f"http://127.0.0.1:{free_port()}/v1/chat/completions", {}, b"{}")
    refused = await _failure(session, closed)
    assert refused.kind == "connection" and refused.status == 502 and refused.retryable
    upstream.delay = 1.0
    timed_out = await _failure(session, upstream.request(), read_timeout(0.1))
    assert timed_out.kind == "timeout" and timed_out.status == 504 and timed_out.retryable


async def test_a_redirect_is_a_bad_gateway(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    upstream.status, upstream.body = 302, b""  # and no Location
    failure = await _failure(session, upstream.request())
    assert failure.status == 502 and failure.kind == "status" and "redirect" in failure.message


async def test_names_resolving_to_private_addresses_are_not_connected_to(
    upstream: Upstream,
) -> None:
    session = open_session(allow_private=False)
    try:
        port = upstream.url.rsplit(":", 1)[1]
        by_name = UpstreamRequest(f"http://localhost:{port}/v1/chat/completions", {}, b"{}")
        failure = await _failure(session, by_name)
    finally:
        await session.close()
    assert failure.kind == "connection" and not upstream.seen


async def test_a_malformed_channel_url_is_a_connection_failure(
    session: aiohttp.ClientSession,
) -> None:
    failure = await _failure(session, UpstreamRequest("not a url", {}, b"{}"))
    assert failure.kind == "connection" and failure.status == 502


def test_http_and_socks5_proxies_are_usable() -> None:
    assert usable_proxy("http://proxy:8080") and usable_proxy("HTTPS://proxy")
    assert usable_proxy("socks5://proxy:1080") and usable_proxy("socks5h://proxy:1080")
    assert not usable_proxy("socks4://proxy:1080") and not usable_proxy("ftp://proxy")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>bad gateway</html>", "bad response status code 502"),
        (b'{"error": "plain text error"}', "plain text error"),
        (b'{"detail": "x"}', "bad response status code 502"),
        (b'{"error": {"message": ""}}', "bad response status code 502"),
    ],
)
def test_error_body_parsing(body: bytes, message: str) -> None:
    assert parse_error_body(502, body)[0] == message
