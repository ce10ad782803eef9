"""Per-IP rate limits and client addresses behind proxies, on web apps built in this process
(each with its own environment) against the session's accounts and billing services."""

from __future__ import annotations

import ipaddress
import uuid

import httpx
import pytest
from starlette.applications import Starlette

from tests.support.helpers import ROOT_PASSWORD, ROOT_USERNAME, create_user, root_console
from tests.support.web_kit import set_options, web_app

pytestmark = pytest.mark.integration


def client(app: Starlette, peer: str, scheme: str = "http") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://console.test")


@pytest.fixture
async def web_url_with_root(web_url: str) -> str:
    """The session's web service, first-time setup done (root can log in)."""
    await (await root_console(web_url)).aclose()
    return web_url


def fresh_ip() -> str:
    return str(ipaddress.ip_address(f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"))


def _is_429(reply: httpx.Response) -> bool:
    if reply.status_code != 429:
        return False
    body = reply.json()
    assert body["success"] is False and "too many requests" in body["message"]
    assert int(reply.headers["retry-after"]) >= 1
    return True


async def test_api_limit_is_shared_by_two_replicas(
    service_env: dict[str, str], web_url: str
) -> None:
    env = {"GLOBAL_API_RATE_LIMIT_ENABLE": "true", "GLOBAL_API_RATE_LIMIT": "4"}
    ip = fresh_ip()
    async with web_app(service_env, **env) as first, web_app(service_env, **env) as second:
        async with client(first, ip) as a, client(second, ip) as b:
            replies = [await (a if n % 2 else b).get("/api/status") for n in range(4)]
            assert [r.status_code for r in replies] == [200] * 4
            assert _is_429(await a.get("/api/status"))
            assert _is_429(await b.get("/api/status"))
        async with client(second, fresh_ip()) as elsewhere:
            assert (await elsewhere.get("/api/status")).status_code == 200


async def test_critical_limit_covers_registration_and_login(
    service_env: dict[str, str], web_url_with_root: str
) -> None:
    ip = fresh_ip()
    async with web_app(
        service_env, CRITICAL_RATE_LIMIT_ENABLE="true", CRITICAL_RATE_LIMIT="3"
    ) as app:
        async with client(app, ip) as anonymous:
            for n in range(3):
                reply = await anonymous.post(
                    "/api/user/register", json={"username": f"r{n}", "password": "short"}
                )
                assert reply.status_code == 200
            assert _is_429(await anonymous.post("/api/user/register", json={}))
            login = {"username": ROOT_USERNAME, "password": ROOT_PASSWORD}
            assert _is_429(await anonymous.post("/api/user/login", json=login))
            # OAuth callbacks count too (middleware/rate-limit.go: CriticalRateLimit on /oauth/*).
            assert _is_429(await anonymous.get("/api/oauth/github", params={"code": "c"}))
            assert _is_429(await anonymous.get("/api/oauth/oidc", params={"code": "c"}))
            # So do the second factor and passkey sign-in (a code or an assertion is a login).
            assert _is_429(await anonymous.post("/api/user/login/2fa", json={"code": "123456"}))
            assert _is_429(await anonymous.post("/api/user/2fa/disable", json={"code": "1"}))
            assert _is_429(await anonymous.post("/api/user/passkey/login/options"))
            assert _is_429(await anonymous.post("/api/user/passkey/login", json={}))
            # Routes outside the critical group are not affected.
            assert (await anonymous.get("/api/status")).status_code == 200
        async with client(app, fresh_ip()) as other:
            answer = (await other.post("/api/user/login", json=login)).json()
            assert answer["success"] is True, answer


async def test_web_limit_covers_console_pages_not_probes(
    service_env: dict[str, str], web_url: str
) -> None:
    env = {"GLOBAL_WEB_RATE_LIMIT_ENABLE": "true", "GLOBAL_WEB_RATE_LIMIT": "2"}
    async with web_app(service_env, **env) as app, client(app, fresh_ip()) as browser:
        assert [(await browser.get("/")).status_code for _ in range(2)] == [200, 200]
        assert _is_429(await browser.get("/static/app.js"))
        assert (await browser.get("/healthz")).status_code == 200


async def behind_proxy(web_url: str) -> None:
    """ReverseProxyEnabled switched on; a test calling it takes `saved_options`."""
    root = await root_console(web_url)
    try:
        await set_options(root, {"ReverseProxyEnabled": "true"})
    finally:
        await root.aclose()


async def test_spoofed_forwarding_headers_do_not_dodge_the_ip_lock(
    service_env: dict[str, str], web_url: str, saved_options: None
) -> None:
    root = await root_console(web_url)
    user, _ = await create_user(root, quota=0)
    name = (await user.call("GET", "/api/user/self"))["username"]
    await user.aclose()
    await root.aclose()
    attacker = fresh_ip()
    await behind_proxy(web_url)
    async with (
        web_app(service_env, TRUSTED_PROXIES="10.0.0.0/8") as app,
        client(app, attacker) as direct,
    ):
        for n in range(20):
            spoofed = {"X-Forwarded-For": f"192.0.2.{n}", "X-Real-IP": f"192.0.2.{n}"}
            await direct.post(
                "/api/user/login",
                json={"username": f"nobody{n}", "password": "wrong-pass"},
                headers=spoofed,
            )
        reply = await direct.post(
            "/api/user/login",
            json={"username": name, "password": "password123"},
            headers={"X-Forwarded-For": "198.51.100.200"},
        )
        assert reply.json()["success"] is False
        assert "IP" in reply.json()["message"]


async def test_the_client_behind_a_trusted_proxy_is_the_rightmost_untrusted_hop(
    service_env: dict[str, str], web_url_with_root: str, saved_options: None
) -> None:
    client_ip = fresh_ip()
    await behind_proxy(web_url_with_root)
    async with (
        web_app(service_env, TRUSTED_PROXIES="10.0.0.0/8") as app,
        client(app, "10.0.0.5") as proxy,
    ):
        reply = await proxy.post(
            "/api/user/login",
            json={"username": ROOT_USERNAME, "password": ROOT_PASSWORD},
            headers={"X-Forwarded-For": f"6.6.6.6, {client_ip}, 10.0.0.9"},
        )
        user_id = str(reply.json()["data"]["id"])
        sessions = (
            await proxy.get("/api/user/sessions", headers={"Veloera-User": user_id})
        ).json()["data"]
    current = next(s for s in sessions if s["current"])
    assert current["ip"] == client_ip


async def test_session_cookie_is_secure_over_https_only(
    service_env: dict[str, str], web_url_with_root: str
) -> None:
    login = {"username": ROOT_USERNAME, "password": ROOT_PASSWORD}
    https = {"X-Forwarded-Proto": "https"}
    async with web_app(service_env, TRUSTED_PROXIES="10.0.0.0/8") as app:
        async with client(app, "10.0.0.5") as proxy:
            via_proxy = await proxy.post("/api/user/login", json=login, headers=https)
        async with client(app, fresh_ip()) as stranger:
            claimed = await stranger.post("/api/user/login", json=login, headers=https)
        async with client(app, fresh_ip(), scheme="https") as direct:
            direct_tls = await direct.post("/api/user/login", json=login)
    assert "secure" in via_proxy.headers["set-cookie"].lower()
    assert "secure" in direct_tls.headers["set-cookie"].lower()
    assert "secure" not in claimed.headers["set-cookie"].lower()


async def test_logout_is_a_post_and_a_cross_site_get_is_refused(
    service_env: dict[str, str], web_url_with_root: str
) -> None:
    async with web_app(service_env) as app, client(app, fresh_ip()) as browser:
        login = {"username": ROOT_USERNAME, "password": ROOT_PASSWORD}
        user_id = str((await browser.post("/api/user/login", json=login)).json()["data"]["id"])
        who = {"Veloera-User": user_id}
        cross = await browser.get("/api/user/logout", headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        assert (await browser.get("/api/user/self", headers=who)).status_code == 200
        assert (await browser.post("/api/user/logout")).json()["success"] is True
        browser.cookies.clear()
        assert (await browser.get("/api/user/self", headers=who)).status_code == 401
