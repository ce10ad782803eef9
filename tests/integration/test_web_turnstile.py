"""Cloudflare Turnstile on the routes upstream protects, against a loopback siteverify fake,
on web apps built in this process (their TURNSTILE_VERIFY_URL points at the fake)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from services.web.app import create_app
from services.web.settings import load_settings
from tests.fakes.signin import FakeTurnstile, LoopbackServer
from tests.support.helpers import Console, root_console, unique_name
from tests.support.options import restored_options
from tests.support.web_kit import set_options

pytestmark = pytest.mark.integration

SECRET = "turnstile-secret-0123456789"
GOOD = "good-widget-token"
OFF = {
    "GLOBAL_API_RATE_LIMIT_ENABLE": "false",
    "GLOBAL_WEB_RATE_LIMIT_ENABLE": "false",
    "CRITICAL_RATE_LIMIT_ENABLE": "false",
}


TURNSTILE_ON = {
    "TurnstileSiteKey": "site-key-public",
    "TurnstileSecretKey": SECRET,
    "TurnstileCheckEnabled": "true",
}


@contextlib.asynccontextmanager
async def siteverify(delay: float = 0.0) -> AsyncIterator[FakeTurnstile]:
    fake = FakeTurnstile(secret=SECRET, valid={GOOD}, delay=delay)
    server = LoopbackServer(fake.app())
    await server.start()
    fake.url = server.url
    try:
        yield fake
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def web_app(
    service_env: dict[str, str], verify_url: str, **env: str
) -> AsyncIterator[Starlette]:
    settings = load_settings(
        {**service_env, **OFF, "TURNSTILE_VERIFY_URL": verify_url, "TURNSTILE_TIMEOUT": "1", **env}
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def browser(app: Starlette) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://console.test")


@contextlib.asynccontextmanager
async def armed(
    service_env: dict[str, str], root: Console, delay: float = 0.0, **env: str
) -> AsyncIterator[tuple[FakeTurnstile, Starlette]]:
    """Turnstile switched on, a siteverify fake, and a web app that verifies against it. The
    options stay set: a test using it takes `saved_options`, which puts them back."""
    async with contextlib.AsyncExitStack() as stack:
        fake = await stack.enter_async_context(siteverify(delay))
        await set_options(root, TURNSTILE_ON)
        app = await stack.enter_async_context(web_app(service_env, f"{fake.url}/siteverify", **env))
        yield fake, app


async def _register(client: httpx.AsyncClient, query: str = "") -> dict[str, object]:
    name = unique_name("t")
    reply = await client.post(
        f"/api/user/register{query}", json={"username": name, "password": "password123"}
    )
    assert reply.status_code == 200
    body: dict[str, object] = reply.json()
    return body


async def test_turnstile_guards_registration_and_login_once_per_session(
    service_env: dict[str, str], web_url: str, saved_options: None
) -> None:
    root = await root_console(web_url)
    async with armed(service_env, root) as (fake, app):
        async with browser(app) as client:
            missing = await _register(client)
            assert missing["success"] is False and "Turnstile" in str(missing["message"])
            wrong = await _register(client, "?turnstile=forged")
            assert wrong["success"] is False and "failed" in str(wrong["message"])
            passed = await _register(client, f"?turnstile={GOOD}")
            assert passed["success"] is True, passed
            # siteverify got the secret, the token and the client's address
            assert fake.calls[-1] == {
                    "secret": SECRET, "response": GOOD, "remoteip": "203.0.113.9"
                }  # fmt: skip
            calls = len(fake.calls)
            # the session passed: the next protected call needs no token
            again = await _register(client)
            assert again["success"] is True, again
            login = await client.post(
                "/api/user/login", json={"username": "nobody-here", "password": "x" * 8}
            )
            assert "Turnstile" not in login.json()["message"]
            assert len(fake.calls) == calls
        async with browser(app) as stranger:
            # another browser (no flow cookie) must pass on its own
            login = await stranger.post(
                "/api/user/login", json={"username": "nobody-here", "password": "x" * 8}
            )
            assert login.json() == {
                "success": False,
                "message": "Turnstile token is empty, please complete the verification",
                "data": None,
            }
    await root.aclose()


async def test_turnstile_covers_every_protected_route(
    service_env: dict[str, str], web_url: str, saved_options: None
) -> None:
    root = await root_console(web_url)
    async with armed(service_env, root) as (_, app), browser(app) as client:
        headers = {
            "Veloera-User": str(root.user_id),
            "Cookie": f"session={root.client.cookies['session']}",
        }
        for method, path in (
            ("GET", "/api/verification?email=a@example.com"),
            ("GET", "/api/reset_password?email=a@example.com"),
            ("POST", "/api/user/topup"),
            ("POST", "/api/user/check_in"),
            ("POST", "/api/user/login"),
            ("POST", "/api/user/register"),
        ):
            reply = await client.request(method, path, headers=headers, json={})
            body = reply.json()
            assert body["success"] is False, (path, body)
            assert "Turnstile token is empty" in body["message"], (path, body)
        # unprotected routes are untouched
        status = (await client.get("/api/status")).json()
        assert status["data"]["turnstile_check"] is True
        assert status["data"]["turnstile_site_key"] == "site-key-public"
        assert (await client.get("/api/user/self", headers=headers)).json()["success"]
    await root.aclose()


async def test_siteverify_timeout_fails_closed(
    service_env: dict[str, str], web_url: str, accounts_addr: str
) -> None:
    root = await root_console(web_url)
    async with (
        restored_options(web_url, accounts_addr),
        armed(service_env, root, 5.0, TURNSTILE_TIMEOUT="0.3") as (_, app),
        browser(app) as client,
    ):
        body = await _register(client, f"?turnstile={GOOD}")
        assert body["success"] is False
        assert "Turnstile verification failed" in str(body["message"])
    async with web_app(service_env, "http://127.0.0.1:9/siteverify") as app, browser(app) as client:
        # switched off again: no token needed
        assert (await _register(client))["success"] is True
    await root.aclose()
