"""The relay's ASGI app: `create_app(settings)`; clients and channels open in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Route

from services.relay.endpoints import BY_PATH
from services.relay.routes.dashboard import dashboard_routes
from services.relay.routes.gemini import GeminiRoutes
from services.relay.routes.misc import MiscRoutes, http_exception
from services.relay.routes.models import ModelsRoute
from services.relay.routes.realtime import realtime_routes
from services.relay.routes.relay import RelayRoute
from services.relay.routes.tasks import task_routes
from services.relay.settings import Settings
from services.relay.state import RelayContext
from services.shared.access_log import AccessLogMiddleware
from services.shared.gctune import settle_after_startup

logger = logging.getLogger(__name__)

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _api_routes(
    prefix: str, relay: RelayRoute, models: ModelsRoute, gemini: GeminiRoutes
) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route(f"{prefix}/v1{path}", relay.handler(endpoint), methods=["POST"])
        for path, endpoint in BY_PATH.items()
    ]
    return [
        *routes,
        Route(f"{prefix}/v1/messages", relay.messages, methods=["POST"]),
        Route(f"{prefix}/v1/messages/count_tokens", relay.count_tokens, methods=["POST"]),
        Route(
            f"{prefix}/v1/engines/{{model}}/embeddings", relay.engine_embeddings, methods=["POST"]
        ),
        Route(f"{prefix}/v1/models", gemini.either(gemini.list, models.list), methods=["GET"]),
        Route(
            f"{prefix}/v1/models/{{model:path}}",
            gemini.either(gemini.retrieve, models.retrieve),
            methods=["GET"],
        ),
        # google-genai's default API version is v1: its generateContent & co. come here.
        Route(f"{prefix}/v1/models/{{model:path}}", gemini.action, methods=["POST"]),
    ]


def _gemini_routes(gemini: GeminiRoutes) -> list[BaseRoute]:
    return [
        Route("/v1beta/models", gemini.list, methods=["GET"]),
        Route("/v1beta/models/{model:path}", gemini.retrieve, methods=["GET"]),
        Route("/v1beta/models/{model:path}", gemini.action, methods=["POST"]),
        Route("/v1beta/{rest:path}", gemini.not_found, methods=ALL_METHODS),
    ]


def build_routes(ctx: RelayContext) -> list[BaseRoute]:
    relay, models, misc = RelayRoute(ctx), ModelsRoute(ctx), MiscRoutes(ctx)
    gemini = GeminiRoutes(relay, models)
    return [
        *_api_routes("", relay, models, gemini),
        *_api_routes("/hf", relay, models, gemini),  # /hf/v1/* is an alias of /v1/*
        *realtime_routes(ctx, ""),
        *realtime_routes(ctx, "/hf"),
        *_gemini_routes(gemini),
        *dashboard_routes(ctx),
        *task_routes(ctx),
        Route("/veloera", misc.veloera, methods=["GET"]),
        Route("/healthz", misc.healthz, methods=["GET"]),
        Route("/readyz", misc.readyz, methods=["GET"]),
        Route("/metrics", misc.metrics, methods=["GET"]),
        Route("/v1/{rest:path}", misc.not_implemented, methods=ALL_METHODS),
        Route("/hf/v1/{rest:path}", misc.not_implemented, methods=ALL_METHODS),
        Route("/{rest:path}", misc.not_found, methods=ALL_METHODS),
    ]


def create_app(settings: Settings) -> Starlette:
    """The relay app. Opens the upstream HTTP client, the gRPC channels, NATS and the routing
    snapshot on startup; drains pending settlements and closes them on shutdown."""
    ctx = RelayContext(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await ctx.open()
        except BaseException:
            await ctx.close()
            raise
        settle_after_startup()  # tokenizer tables, snapshot, modules: out of the GC's way
        logger.info("relay ready", extra={"port": settings.port})
        try:
            yield
        finally:
            await ctx.close()

    app = Starlette(
        routes=build_routes(ctx),
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception},
        # Any origin may call the API with a key, as upstream `middleware/cors.go` allows:
        # the console's playground runs on the web service's origin, not the relay's.
        middleware=[
            *([Middleware(AccessLogMiddleware)] if settings.access_log else []),
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=ALL_METHODS,
                allow_headers=["*"],
                max_age=600,
            ),
        ],
    )
    app.state.relay = ctx
    return app
