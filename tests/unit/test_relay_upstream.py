"""Upstream attempts: failure classification and error bodies, against httpx.MockTransport."""

from __future__ import annotations

import httpx
import orjson
import pytest

from services.relay.adaptors.base import UpstreamRequest
from services.relay.upstream import UpstreamFailure, open_upstream, parse_error_body

REQUEST = UpstreamRequest(
    "http://upstream/v1/chat/completions", {"Authorization": "Bearer k"}, b"{}"
)
TIMEOUT = httpx.Timeout(5.0)


def client(handler: httpx.MockTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=handler)


async def _attempt(handler: object) -> UpstreamFailure:
    async with client(httpx.MockTransport(handler)) as c:  # type: ignore[arg-type]
        with pytest.raises(UpstreamFailure) as info:
            await open_upstream(c, REQUEST, TIMEOUT)
    return info.value


async def test_success_returns_the_open_response_with_our_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    async with client(httpx.MockTransport(handler)) as c:
        response = await open_upstream(c, REQUEST, TIMEOUT)
        assert orjson.loads(await response.aread()) == {"ok": True}
        await response.aclose()
    assert seen[0].headers["authorization"] == "Bearer k"


async def test_5xx_is_retryable_and_keeps_the_upstream_message() -> None:
    body = {"error": {"message": "overloaded", "type": "server_error", "code": "x"}}
    failure = await _attempt(lambda r: httpx.Response(503, json=body))
    assert failure.retryable and failure.status == 503
    assert failure.message == "overloaded" and failure.error == body["error"]


async def test_4xx_is_not_retryable() -> None:
    failure = await _attempt(lambda r: httpx.Response(400, json={"error": {"message": "bad"}}))
    assert not failure.retryable and failure.status == 400 and failure.message == "bad"


async def test_connection_error_and_timeout_are_retryable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    refused = await _attempt(refuse)
    assert refused.kind == "connection" and refused.retryable
    timed_out = await _attempt(slow)
    assert timed_out.kind == "timeout" and timed_out.status == 504


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
