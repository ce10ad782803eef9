"""Web service apps and sign-in identities the console tests build."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette

from services.web.app import create_app
from services.web.settings import load_settings
from tests.fakes.signin import FakeOAuthProvider, LoopbackServer
from tests.support.helpers import Console

CLIENT_ID, CLIENT_SECRET = "veloera-client", "client-secret-0123456789"


def github_user(name: str = "Octo Cat") -> dict[str, Any]:
    return {"id": secrets.randbelow(10**9), "login": f"octo{secrets.token_hex(3)}", "name": name}


@contextlib.asynccontextmanager
async def web_app(service_env: dict[str, str], **env: str) -> AsyncIterator[Starlette]:
    """A web replica with `env` over the session's environment, lifespan running."""
    app = create_app(load_settings({**service_env, **LIMITS_OFF, **env}))
    async with app.router.lifespan_context(app):
        yield app


LIMITS_OFF = {
    "GLOBAL_API_RATE_LIMIT_ENABLE": "false",
    "GLOBAL_WEB_RATE_LIMIT_ENABLE": "false",
    "CRITICAL_RATE_LIMIT_ENABLE": "false",
}


OFF = {
    "GLOBAL_API_RATE_LIMIT_ENABLE": "false",
    "GLOBAL_WEB_RATE_LIMIT_ENABLE": "false",
    "CRITICAL_RATE_LIMIT_ENABLE": "false",
}


@contextlib.asynccontextmanager
async def provider() -> AsyncIterator[FakeOAuthProvider]:
    fake = FakeOAuthProvider(CLIENT_ID, CLIENT_SECRET)
    server = LoopbackServer(fake.app())
    await server.start()
    fake.url = server.url
    try:
        yield fake
    finally:
        await server.stop()


async def set_options(root: Console, options: dict[str, str]) -> None:
    for key, value in options.items():
        await root.call("PUT", "/api/option/", json={"key": key, "value": value})


@contextlib.asynccontextmanager
async def signin_web(
    service_env: dict[str, str], root: Console, fake: FakeOAuthProvider, **options: str
) -> AsyncIterator[Starlette]:
    """GitHub and OIDC switched on against `fake`, and a web app that talks to it. The options
    stay set: a test using it takes `saved_options`, which puts them back."""
    await set_options(
        root,
        {
            "GitHubClientId": CLIENT_ID,
            "GitHubClientSecret": CLIENT_SECRET,
            "GitHubOAuthEnabled": "true",
            "oidc.client_id": CLIENT_ID,
            "oidc.client_secret": CLIENT_SECRET,
            "oidc.well_known": f"{fake.url}/.well-known/openid-configuration",
            # endpoints come from discovery unless a test names them (another test may have)
            "oidc.authorization_endpoint": "",
            "oidc.token_endpoint": "",
            "oidc.user_info_endpoint": "",
            "oidc.enabled": "true",
            **options,
        },
    )
    env = {
        **service_env,
        **OFF,
        "GITHUB_OAUTH_TOKEN_URL": f"{fake.url}/token",
        "GITHUB_USER_URL": f"{fake.url}/user",
        "OAUTH_TIMEOUT": "3",
    }
    app = create_app(load_settings(env))
    async with app.router.lifespan_context(app):
        yield app


def browser(app: Starlette) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://console.test")


async def sign_in(
    client: httpx.AsyncClient,
    fake: FakeOAuthProvider,
    user: dict[str, Any],
    provider_name: str = "github",
    aff: str = "",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The console's round trip: a state, consent at the provider, then the callback."""
    state = (await client.get("/api/oauth/state", params={"aff": aff})).json()["data"]
    code = fake.issue_code(user)
    reply = await client.get(
        f"/api/oauth/{provider_name}", params={"code": code, "state": state}, headers=headers
    )
    body: dict[str, Any] = reply.json()
    return body
