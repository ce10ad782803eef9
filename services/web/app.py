"""The web console: management API (`/api/*`), the page, attribution and health endpoints."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from veloera.accounts.v1 import accounts_pb2_grpc
from veloera.billing.v1 import billing_pb2_grpc

from services.shared.access_log import AccessLogMiddleware
from services.shared.channel_probes import ProbeClient
from services.shared.grpcutil import open_channel
from services.web.body_limit import BodyLimitMiddleware
from services.web.deps import Deps
from services.web.metrics import MetricsMiddleware
from services.web.nats_link import NatsLink
from services.web.rate_limit import RateLimitMiddleware
from services.web.routes import (
    channel_health,
    channels,
    checkin,
    console,
    data,
    email,
    logs,
    messages,
    messenger_signin,
    model_mapping,
    oauth,
    options,
    pages,
    passkeys,
    pricing,
    redemptions,
    system,
    tasks,
    tokens,
    topup,
    two_factor,
    user_self,
    users,
)
from services.web.settings import Settings
from services.web.turnstile import TurnstileMiddleware

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"


def _routes() -> list[BaseRoute]:
    return [
        *system.ROUTES,
        *two_factor.ROUTES,
        *passkeys.ROUTES,
        *users.ROUTES,
        *email.ROUTES,
        *oauth.ROUTES,
        *messenger_signin.ROUTES,
        *user_self.ROUTES,
        *messages.ROUTES,
        *model_mapping.ROUTES,
        *tokens.ROUTES,
        *channel_health.ROUTES,
        *channels.ROUTES,
        *options.ROUTES,
        *logs.ROUTES,
        *tasks.ROUTES,
        *data.ROUTES,
        *pricing.ROUTES,
        *redemptions.ROUTES,
        *checkin.ROUTES,
        *console.ROUTES,
        *topup.ROUTES,
        *pages.ROUTES,
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        pages.FALLBACK,
    ]


def create_app(settings: Settings) -> Starlette:
    """Build the ASGI app; gRPC channels to accounts and billing open in the lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        accounts_channel = open_channel(settings.accounts_addr, settings.credential)
        billing_channel = open_channel(settings.billing_addr, settings.credential)
        nats_link = NatsLink(settings)
        app.state.deps = Deps(
            settings=settings,
            accounts=accounts_pb2_grpc.AccountsServiceStub(accounts_channel),
            billing=billing_pb2_grpc.BillingServiceStub(billing_channel),
            channels=[accounts_channel, billing_channel],
            tasks=nats_link,
            probes=ProbeClient(nats_link.connection, settings.channel_probe_timeout),
        )
        nats_link.start()
        logger.info(
            "web console on %s:%d (accounts %s, billing %s)",
            settings.bind_host,
            settings.port,
            settings.accounts_addr,
            settings.billing_addr,
        )
        try:
            yield
        finally:
            await channel_health.stop_background(app)
            await nats_link.close()
            await accounts_channel.close(grace=2.0)
            await billing_channel.close(grace=2.0)

    app = Starlette(
        routes=_routes(),
        middleware=[
            Middleware(AccessLogMiddleware),
            Middleware(MetricsMiddleware),
            Middleware(RateLimitMiddleware),
            Middleware(TurnstileMiddleware),
            Middleware(BodyLimitMiddleware),
            Middleware(GZipMiddleware, minimum_size=1024),
        ],
        lifespan=lifespan,
    )
    app.state.index_html = pages.load_index()
    return app
