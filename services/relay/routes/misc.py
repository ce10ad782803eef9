"""Probes, metrics, the attribution text and the OpenAI-shaped fallbacks."""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from services.relay.client import count
from services.relay.endpoints import BY_PATH
from services.relay.errors import RelayError, error_response
from services.relay.ids import new_request_id
from services.relay.ingress import anthropic
from services.relay.state import RelayContext

# OpenAI API families upstream answers 501 for (reference: router/relay-router.go).
UNIMPLEMENTED = ("files", "fine-tunes", "fine_tuning")
SERVED_ELSEWHERE = frozenset({"models", "messages", "messages/count_tokens"})  # not in BY_PATH


class MiscRoutes:
    def __init__(self, ctx: RelayContext) -> None:
        self.ctx = ctx

    async def veloera(self, request: Request) -> Response:
        return Response(self.ctx.veloera_text, media_type="text/plain; charset=utf-8")

    async def healthz(self, request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def readyz(self, request: Request) -> Response:
        if self.ctx.ready():
            return Response(b'{"status":"ready"}', media_type="application/json")
        return Response(b'{"status":"not ready"}', 503, media_type="application/json")

    async def metrics(self, request: Request) -> Response:
        """Prometheus text, only to a scraper holding RELAY_METRICS_TOKEN: the relay's port is
        public, and its metrics name models, channels and traffic. Without a token: 404."""
        token = self.ctx.settings.metrics_token
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return await self.not_found(request)
        return Response(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def not_implemented(self, request: Request) -> Response:
        """Under /v1: upstream's 501 for the API families it never implemented (files,
        fine-tunes); 405 for a served path with another method; else 404 like any unknown URL
        (a 5xx would have SDKs retry the client's own mistake)."""
        rest = str(request.path_params.get("rest", ""))
        if rest.startswith(UNIMPLEMENTED):
            error = RelayError(
                501, "API not implemented", type_="veloera_error", code="not_implemented"
            )
        elif (
            "/" + rest in BY_PATH
            or rest in SERVED_ELSEWHERE
            or rest.startswith(("models/", "engines/"))
        ):
            error = RelayError(
                405,
                f"{request.method} is not allowed on {request.url.path}",
                type_="invalid_request_error",
                code="method_not_allowed",
            )
        else:
            return await self.not_found(request)
        count("other", error.status)
        if rest.startswith("messages"):  # Anthropic's paths answer in Anthropic's shape
            return anthropic.error_response(error, new_request_id())
        return error_response(error, new_request_id())

    async def not_found(self, request: Request) -> Response:
        error = RelayError(
            404,
            f"Invalid URL ({request.method} {request.url.path})",
            type_="invalid_request_error",
            code="not_found",
        )
        count("other", 404)
        return error_response(error, new_request_id())


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (e.g. 405) in OpenAI's shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return error_response(
        RelayError(status, str(detail), type_="invalid_request_error"), new_request_id()
    )
