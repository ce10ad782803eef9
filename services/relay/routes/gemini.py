"""Gemini's routes (`/v1beta/models...`, and `/v1/models...` where google-genai sends them):
generateContent and streamGenerateContent, countTokens, embedContent and batchEmbedContents
through the relay's own path, and the model list in Gemini's shape (upstream
`controller/gemini.go`, `router/relay-router.go`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from services.relay import endpoints as ep
from services.relay.client import authorise, count
from services.relay.errors import REQUEST_ID_HEADER, RelayError
from services.relay.ids import new_request_id
from services.relay.ingress import Ingress, gemini
from services.relay.routes.models import ModelsRoute
from services.relay.routes.relay import RelayRoute

Handler = Callable[[Request], Awaitable[Response]]
# Upstream reports fixed limits: it does not know each model's (controller/gemini.go).
INPUT_LIMIT = 32768
OUTPUT_LIMIT = 8192
METHODS = ["generateContent", "streamGenerateContent", "countTokens", "embedContent"]
PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def model_object(name: str) -> dict[str, Any]:
    return {
        "name": f"models/{name}",
        "baseModelId": name,
        "version": "",
        "displayName": name,
        "description": "",
        "inputTokenLimit": INPUT_LIMIT,
        "outputTokenLimit": OUTPUT_LIMIT,
        "supportedGenerationMethods": METHODS,
    }


def _page(request: Request, names: list[str]) -> dict[str, Any]:
    """One page of the list: `pageSize` models from the offset `pageToken` holds."""
    size_text = request.query_params.get("pageSize", "")
    token = request.query_params.get("pageToken", "")
    if size_text and not (size_text.isascii() and size_text.isdigit() and len(size_text) < 7):
        raise RelayError(400, "pageSize must be a positive integer", code="invalid_request")
    if token and not (token.isascii() and token.isdigit() and len(token) < 10):
        raise RelayError(400, "pageToken is invalid", code="invalid_request")
    size = min(int(size_text or 0) or PAGE_SIZE, MAX_PAGE_SIZE)
    start = int(token or 0)
    body: dict[str, Any] = {"models": [model_object(n) for n in names[start : start + size]]}
    if start + size < len(names):
        body["nextPageToken"] = str(start + size)
    return body


def _json(body: dict[str, Any], request_id: str) -> Response:
    return Response(
        orjson.dumps(body), headers={REQUEST_ID_HEADER: request_id}, media_type="application/json"
    )


class GeminiRoutes:
    def __init__(self, relay: RelayRoute, models: ModelsRoute) -> None:
        self.relay = relay
        self.models = models

    async def action(self, request: Request) -> Response:
        """POST models/{model}:{action}: the model and the action share the last path segment
        (a model may hold ':' or '/'; the action follows the last ':')."""
        model, _, action = str(request.path_params["model"]).rpartition(":")
        if model and action in ("generateContent", "streamGenerateContent"):
            stream = action == "streamGenerateContent"
            sse = request.query_params.get("alt") == "sse"
            ingress = gemini.generate_ingress(model, stream=stream, sse=sse)
            return await self.relay.handle(request, ep.CHAT, ingress=ingress)
        if model and action in ("embedContent", "batchEmbedContents"):
            ingress = gemini.embed_ingress(model, batch=action == "batchEmbedContents")
            return await self.relay.handle(request, ep.EMBEDDINGS, ingress=ingress)
        if model and action == "countTokens":
            counter = Ingress(
                "gemini_count",
                lambda raw: gemini.parse_count(raw, model),
                gemini.error_response,
                gemini.read_key,
            )
            return await self.relay.count_prompt(request, counter, lambda n: {"totalTokens": n})
        return await self.not_found(request)

    async def not_found(self, request: Request) -> Response:
        """Any other `/v1beta` URL or method: Google's 404, in its shape."""
        error = RelayError(
            404, f"{request.method} {request.url.path} is not found", code="not_found"
        )
        count("gemini", 404)
        return gemini.error_response(error, new_request_id())

    async def list(self, request: Request) -> Response:
        """GET models: the models the key may use, `pageSize` at a time."""
        request_id = new_request_id()
        try:
            entry = await authorise(self.relay.ctx, request, gemini.read_key(request), None)
            response = _json(_page(request, self.models.visible_models(entry)), request_id)
        except RelayError as err:
            response = gemini.error_response(err, request_id)
        count("models", response.status_code)
        return response

    async def retrieve(self, request: Request) -> Response:
        request_id = new_request_id()
        model = str(request.path_params["model"])
        try:
            entry = await authorise(self.relay.ctx, request, gemini.read_key(request), None)
            if model not in self.models.visible_models(entry):
                raise RelayError(404, f"models/{model} is not found", code="model_not_found")
            response = _json(model_object(model), request_id)
        except RelayError as err:
            response = gemini.error_response(err, request_id)
        count("models", response.status_code)
        return response

    def either(self, gemini_handler: Handler, openai_handler: Handler) -> Handler:
        """`/v1/models...` is OpenAI's and (in google-genai) Gemini's: a request carrying its
        key Gemini's way gets Gemini's answer."""

        async def handle(request: Request) -> Response:
            if gemini.speaks_gemini(request):
                return await gemini_handler(request)
            return await openai_handler(request)

        return handle
