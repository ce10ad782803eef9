"""One upstream attempt: send the request, classify the failure (retryable or not)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import orjson

from services.relay.adaptors.base import UpstreamRequest

logger = logging.getLogger(__name__)


class UpstreamFailure(Exception):
    """An attempt that produced no usable reply.

    kind: "status" (non-2xx answer), "connection" or "timeout".
    """

    def __init__(
        self,
        kind: str,
        status: int,
        message: str,
        *,
        error: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.message = message
        self.error = error  # the upstream's OpenAI error object, when it sent one

    @property
    def retryable(self) -> bool:
        return self.kind != "status" or self.status >= 500


def parse_error_body(status: int, body: bytes) -> tuple[str, dict[str, Any] | None]:
    """The upstream's error message and its OpenAI error object (if it sent one)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"bad response status code {status}", None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        message = error.get("message")
        return (
            message
            if isinstance(message, str) and message
            else f"bad response status code {status}"
        ), error
    if isinstance(error, str) and error:
        return error, None
    return f"bad response status code {status}", None


async def open_upstream(
    client: httpx.AsyncClient, request: UpstreamRequest, timeout: httpx.Timeout
) -> httpx.Response:
    """Send and return the open (streaming) 2xx response; the caller must close it."""
    built = client.build_request(
        "POST", request.url, content=request.body, headers=request.headers, timeout=timeout
    )
    try:
        response = await client.send(built, stream=True)
    except httpx.TimeoutException:
        raise UpstreamFailure("timeout", 504, "upstream timed out") from None
    except httpx.HTTPError as exc:
        raise UpstreamFailure(
            "connection", 502, f"upstream connection failed: {type(exc).__name__}"
        ) from None
    if 200 <= response.status_code < 300:
        return response
    try:
        body = await response.aread()
    except httpx.HTTPError:
        body = b""
    finally:
        await response.aclose()
    message, error = parse_error_body(response.status_code, body)
    raise UpstreamFailure("status", response.status_code, message, error=error)
