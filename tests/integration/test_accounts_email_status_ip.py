"""Web options read from accounts: the public /api/status payload and the client IP that
login throttling uses behind a reverse proxy (ReverseProxyEnabled / ReverseProxyProvider)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio

from tests.support.helpers import Console, login, root_console, unique_name
from tests.support.options import restored_options

pytestmark = pytest.mark.integration

PASSWORD = "password123"
DEADLINE = 10.0  # the web service caches options for a few seconds
T = TypeVar("T")


@pytest_asyncio.fixture(loop_scope="session")
async def root(web_url: str) -> AsyncIterator[Console]:
    console = await root_console(web_url)
    yield console
    await console.aclose()


async def _set(root: Console, key: str, value: Any) -> None:
    body = await root.envelope("PUT", "/api/option/", json={"key": key, "value": value})
    assert body["success"], body["message"]


async def _eventually(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool]) -> T:
    """The first probe result `ok` accepts, polling until the options cache expires."""
    deadline = time.monotonic() + DEADLINE
    while True:
        value = await probe()
        if ok(value) or time.monotonic() > deadline:
            return value


async def _status(web_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=web_url, timeout=10.0) as client:
        body: dict[str, Any] = (await client.get("/api/status")).json()
    assert body["success"], body["message"]
    data: dict[str, Any] = body["data"]
    return data


STATUS_OPTIONS: dict[str, str] = {
    "SystemName": "Acme Gateway",
    "Logo": "https://cdn.example.test/logo.png",
    "Footer": "<b>Acme</b>",
    "ServerAddress": "https://api.example.test",
    "Chats": '[{"Acme Chat": "https://chat.example.test/?key={key}"}]',
    "GitHubClientId": "gh-client-id",
    "GitHubClientSecret": "gh-secret-value",
    "GitHubOAuthEnabled": "true",
    "LinuxDOClientId": "ld-client",
    "LinuxDOClientSecret": "ld-secret-value",
    "LinuxDOMinimumTrustLevel": "2",
    "LinuxDOOAuthEnabled": "true",
    "TelegramBotToken": "tg-token-value",
    "TelegramBotName": "acme_bot",
    "TelegramOAuthEnabled": "true",
    "TurnstileSiteKey": "turnstile-site",
    "TurnstileSecretKey": "turnstile-secret-value",
    "TurnstileCheckEnabled": "true",
    "oidc.client_id": "oidc-client",
    "oidc.client_secret": "oidc-secret-value",
    "oidc.well_known": "https://id.example.test/.well-known/openid-configuration",
    "oidc.authorization_endpoint": "https://id.example.test/authorize",
    "oidc.enabled": "true",
}


async def test_status_is_derived_from_the_options(
    web_url: str, root: Console, accounts_addr: str
) -> None:
    before = await _status(web_url)
    async with restored_options(web_url, accounts_addr):
        for key, value in STATUS_OPTIONS.items():
            await _set(root, key, value)
        status = await _eventually(lambda: _status(web_url), lambda s: s["oidc_enabled"])
        assert status["system_name"] == "Acme Gateway"
        assert status["logo"] == "https://cdn.example.test/logo.png"
        assert status["footer_html"] == "<b>Acme</b>"
        assert status["server_address"] == "https://api.example.test"
        assert status["chats"] == [{"Acme Chat": "https://chat.example.test/?key={key}"}]
        assert status["github_oauth"] is True and status["github_client_id"] == "gh-client-id"
        assert status["linuxdo_oauth"] is True and status["linuxdo_client_id"] == "ld-client"
        assert status["linuxdo_minimum_trust_level"] == 2
        assert status["telegram_oauth"] is True and status["telegram_bot_name"] == "acme_bot"
        assert status["turnstile_check"] is True
        assert status["turnstile_site_key"] == "turnstile-site"
        assert status["oidc_client_id"] == "oidc-client"
        assert status["oidc_authorization_endpoint"] == "https://id.example.test/authorize"
        assert status["wechat_login"] is False and status["idcflare_oauth"] is False
        text = str(status)
        for key, value in STATUS_OPTIONS.items():
            if key.endswith(("Secret", "Token", "_secret", "SecretKey")):
                assert value not in text, key
    # the options put back: the status is what it was
    status = await _eventually(lambda: _status(web_url), lambda s: not s["oidc_enabled"])
    assert status["github_oauth"] is before["github_oauth"] is False
    assert status["system_name"] == before["system_name"]
    assert status["chats"] == before["chats"]


async def test_a_toggle_without_credentials_is_refused_and_not_shown(
    web_url: str, root: Console
) -> None:
    await _set(root, "WeChatServerAddress", "")
    body = await root.envelope(
        "PUT", "/api/option/", json={"key": "WeChatAuthEnabled", "value": "true"}
    )
    assert body["success"] is False and "WeChatServerAddress" in body["message"]
    assert (await _status(web_url))["wechat_login"] is False


# ---------------------------------------------------------------- client IP behind a proxy


async def _new_user(root: Console) -> str:
    username = unique_name()
    await root.call("POST", "/api/user/", json={"username": username, "password": PASSWORD})
    return username


async def _login_ip(web_url: str, username: str, headers: dict[str, str]) -> str:
    """The client IP accounts recorded for a fresh login sent with `headers`."""
    async with httpx.AsyncClient(base_url=web_url, timeout=10.0, headers=headers) as client:
        reply = await client.post(
            "/api/user/login", json={"username": username, "password": PASSWORD}
        )
        body = reply.json()
        assert body["success"], body["message"]
        sessions = await client.get(
            "/api/user/sessions", headers={"Veloera-User": str(body["data"]["id"])}
        )
    current = [s for s in sessions.json()["data"] if s["current"]]
    assert len(current) == 1
    ip: str = current[0]["ip"]
    return ip


async def test_client_ip_follows_the_reverse_proxy_options(
    web_url: str, root: Console, accounts_addr: str
) -> None:
    username = await _new_user(root)
    spoofed = {"X-Real-IP": "203.0.113.9", "CF-Connecting-IP": "2001:db8::5"}
    assert await _login_ip(web_url, username, spoofed) == "127.0.0.1"
    async with restored_options(web_url, accounts_addr):
        await _set(root, "ReverseProxyProvider", "nginx")
        await _set(root, "ReverseProxyEnabled", "true")
        ip = await _eventually(
            lambda: _login_ip(web_url, username, spoofed), lambda v: v != "127.0.0.1"
        )
        assert ip == "203.0.113.9"
        # The rightmost hop not in TRUSTED_PROXIES (loopback by default): the leftmost one is
        # whatever the client wrote.
        forwarded = {"X-Forwarded-For": "6.6.6.6, 198.51.100.4"}
        assert await _login_ip(web_url, username, forwarded) == "198.51.100.4"
        forwarded = {"X-Forwarded-For": "198.51.100.4, 127.0.0.1"}
        assert await _login_ip(web_url, username, forwarded) == "198.51.100.4"
        assert await _login_ip(web_url, username, {"X-Real-IP": "not-an-ip"}) == "127.0.0.1"

        await _set(root, "ReverseProxyProvider", "cloudflare")
        ip = await _eventually(
            lambda: _login_ip(web_url, username, spoofed), lambda v: v != "203.0.113.9"
        )
        assert ip == "2001:db8::5"
        assert await _login_ip(web_url, username, {"X-Real-IP": "203.0.113.9"}) == "127.0.0.1"
    ip = await _eventually(
        lambda: _login_ip(web_url, username, spoofed), lambda v: v == "127.0.0.1"
    )
    assert ip == "127.0.0.1"


async def test_an_unknown_provider_is_refused(root: Console) -> None:
    body = await root.envelope(
        "PUT", "/api/option/", json={"key": "ReverseProxyProvider", "value": "haproxy"}
    )
    assert body["success"] is False
    options = {o["key"]: o["value"] for o in await root.call("GET", "/api/option/")}
    assert options["ReverseProxyProvider"] == "nginx"


async def test_the_per_ip_login_lock_uses_the_proxied_address(
    web_url: str, root: Console, accounts_addr: str
) -> None:
    username = await _new_user(root)
    attacker, victim = "192.0.2.66", "192.0.2.77"
    async with restored_options(web_url, accounts_addr):
        await _set(root, "ReverseProxyEnabled", "true")
        await _eventually(
            lambda: _login_ip(web_url, username, {"X-Real-IP": victim}), lambda v: v == victim
        )
        async with httpx.AsyncClient(
            base_url=web_url, timeout=10.0, headers={"X-Real-IP": attacker}
        ) as client:
            for _ in range(20):  # LOGIN_MAX_FAILURES_PER_IP, each on a different account
                await client.post(
                    "/api/user/login",
                    json={"username": f"x{uuid.uuid4().hex[:10]}", "password": "wrong-pass"},
                )
            locked = (
                await client.post(
                    "/api/user/login", json={"username": username, "password": PASSWORD}
                )
            ).json()
        assert locked["success"] is False and "locked" in locked["message"]
        assert await _login_ip(web_url, username, {"X-Real-IP": victim}) == victim
        session = await login(web_url, username, PASSWORD)  # the peer address is not locked
        await session.aclose()
