"""LinuxDO and IDC Flare (OAuth 2 with a minimum trust level), the Telegram login widget and
WeChat through the external WeChat server, against loopback fakes, on web apps built in this
process with the session's accounts and billing services behind them; and /api/status, which
advertises a method only when it is switched on and configured."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from services.web.app import create_app
from services.web.routes.messenger_signin import telegram_hash
from services.web.routes.system import _auth_status
from services.web.settings import load_settings
from tests.fakes.signin import FakeOAuthProvider, FakeWeChatServer, LoopbackServer
from tests.support.helpers import ROOT_PASSWORD, ROOT_USERNAME, Console, create_user, root_console
from tests.support.web_kit import set_options

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("closes_clients")]

CLIENT_ID, CLIENT_SECRET = "discourse-client", "discourse-secret-0123456789"
BOT_TOKEN = "123456:telegram-bot-token"
WECHAT_TOKEN = "wechat-server-token"
OFF = {
    "GLOBAL_API_RATE_LIMIT_ENABLE": "false",
    "GLOBAL_WEB_RATE_LIMIT_ENABLE": "false",
    "CRITICAL_RATE_LIMIT_ENABLE": "false",
}
SWITCHES_OFF = {
    "LinuxDOOAuthEnabled": "false",
    "IDCFlareOAuthEnabled": "false",
    "TelegramOAuthEnabled": "false",
    "WeChatAuthEnabled": "false",
    "LinuxDOMinimumTrustLevel": "0",
    "IDCFlareMinimumTrustLevel": "0",
}


@contextlib.asynccontextmanager
async def methods_web(
    service_env: dict[str, str], root: Console
) -> AsyncIterator[tuple[Starlette, FakeOAuthProvider, FakeWeChatServer]]:
    """Every method switched on against loopback fakes, and a web app that talks to them. The
    options stay set: a test using it takes `saved_options`, which puts them back."""
    provider, wechat = FakeOAuthProvider(CLIENT_ID, CLIENT_SECRET), FakeWeChatServer(WECHAT_TOKEN)
    servers = [LoopbackServer(provider.app()), LoopbackServer(wechat.app())]
    for server in servers:
        await server.start()
    provider.url, wechat.url = servers[0].url, servers[1].url
    await set_options(
        root,
        {
            "LinuxDOClientId": CLIENT_ID, "LinuxDOClientSecret": CLIENT_SECRET,
            "LinuxDOOAuthEnabled": "true", "LinuxDOMinimumTrustLevel": "2",
            "IDCFlareClientId": CLIENT_ID, "IDCFlareClientSecret": CLIENT_SECRET,
            "IDCFlareOAuthEnabled": "true",
            "TelegramBotName": "veloera_test_bot", "TelegramBotToken": BOT_TOKEN,
            "TelegramOAuthEnabled": "true",
            "WeChatServerAddress": wechat.url, "WeChatServerToken": WECHAT_TOKEN,
            "WeChatAuthEnabled": "true",
        },
    )  # fmt: skip
    env = {
        **service_env, **OFF, "OAUTH_TIMEOUT": "3",
        "LINUXDO_CONNECT_URL": provider.url, "IDCFLARE_CONNECT_URL": provider.url,
    }  # fmt: skip
    app = create_app(load_settings(env))
    try:
        async with app.router.lifespan_context(app):
            yield app, provider, wechat
    finally:
        for server in servers:
            await server.stop()


def browser(app: Starlette) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.11", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://console.test")


async def oauth_sign_in(
    client: httpx.AsyncClient, fake: FakeOAuthProvider, provider: str, user: dict[str, Any]
) -> dict[str, Any]:
    state = (await client.get("/api/oauth/state")).json()["data"]
    code = fake.issue_code(user)
    reply = await client.get(f"/api/oauth/{provider}", params={"code": code, "state": state})
    body: dict[str, Any] = reply.json()
    return body


async def app_root(app: Starlette) -> Console:
    """Root signed in on `app` itself, so its option writes are seen by its next request."""
    client = browser(app)
    reply = await client.post(
        "/api/user/login", json={"username": ROOT_USERNAME, "password": ROOT_PASSWORD}
    )
    return Console(client=client, user_id=int(reply.json()["data"]["id"]))


def discourse_user(level: int) -> dict[str, Any]:
    n = secrets.randbelow(10**9)
    return {"id": n, "username": f"ld{n}", "name": "Discourse User", "trust_level": level}


def telegram_params(user_id: int, auth_date: float, token: str = BOT_TOKEN) -> dict[str, str]:
    fields = {"id": str(user_id), "first_name": "Tele", "username": f"tg{user_id}"}
    fields["auth_date"] = str(int(auth_date))
    return {**fields, "hash": telegram_hash(fields, token)}


async def test_linuxdo_enforces_the_minimum_trust_level_and_idcflare_signs_in(
    service_env: dict[str, str], web_url: str, saved_options: None
) -> None:
    root = await root_console(web_url)
    async with methods_web(service_env, root) as (app, fake, _), browser(app) as client:
        low = await oauth_sign_in(client, fake, "linuxdo", discourse_user(1))
        assert low["success"] is False and "trust level is 1" in low["message"]
        assert "at least 2" in low["message"]
        user = discourse_user(2)
        first = await oauth_sign_in(client, fake, "linuxdo", user)
        assert first["success"] is True, first
        assert first["data"]["username"].startswith("linuxdo_")
        headers = {"Veloera-User": str(first["data"]["id"])}
        me = (await client.get("/api/user/self", headers=headers)).json()["data"]
        assert me["linux_do_id"] == str(user["id"])
        # the client secret went as HTTP Basic (Discourse Connect), with the redirect URI
        assert fake.token_requests[-1]["redirect_uri"] == "http://console.test/oauth/linuxdo"
        async with browser(app) as other:
            flare = await oauth_sign_in(other, fake, "idcflare", discourse_user(0))
            assert flare["success"] is True and flare["data"]["username"].startswith("idcflare_")


async def test_telegram_login_checks_the_hash_and_its_age_then_binds(
    service_env: dict[str, str], web_url: str, saved_options: None
) -> None:
    root = await root_console(web_url)
    tg_id = secrets.randbelow(10**9)
    async with methods_web(service_env, root) as (app, _, _), browser(app) as client:
        forged = telegram_params(tg_id, time.time(), token="999:another-bot")
        body = (await client.get("/api/oauth/telegram/login", params=forged)).json()
        assert body["success"] is False and "could not be verified" in body["message"]
        stale = telegram_params(tg_id, time.time() - 2 * 86400)
        body = (await client.get("/api/oauth/telegram/login", params=stale)).json()
        assert body["success"] is False and "expired" in body["message"]
        tampered = {**telegram_params(tg_id, time.time()), "id": str(tg_id + 1)}
        body = (await client.get("/api/oauth/telegram/login", params=tampered)).json()
        assert body["success"] is False
        fresh = telegram_params(tg_id, time.time())
        body = (await client.get("/api/oauth/telegram/login", params=fresh)).json()
        assert body["success"] is True and body["data"]["username"].startswith("telegram_")
        async with browser(app) as replaying:  # the same signed fields work once
            again = (await replaying.get("/api/oauth/telegram/login", params=fresh)).json()
            assert again["success"] is False and "already used" in again["message"]

        user, user_id = await create_user(root, quota=0)
        other_tg = secrets.randbelow(10**9)
        async with browser(app) as bound:
            me = await bound.post(
                "/api/user/login",
                json={"username": (await user.call("GET", "/api/user/self"))["username"],
                      "password": "password123"},
            )  # fmt: skip
            assert me.json()["success"]
            reply = await bound.get(
                "/api/oauth/telegram/bind", params=telegram_params(other_tg, time.time()),
                headers={"Veloera-User": str(user_id)},
            )  # fmt: skip
            assert reply.json()["success"] is True
        self_ = await user.call("GET", "/api/user/self")
        assert self_["telegram_id"] == str(other_tg)
        # an identity bound to one user cannot be bound to another
        taken = await client.get(
            "/api/oauth/telegram/bind", params=telegram_params(other_tg, time.time() - 5),
            headers={"Veloera-User": str(body["data"]["id"])},
        )  # fmt: skip
        assert taken.json()["success"] is False and "already bound" in taken.json()["message"]


async def test_wechat_signs_in_through_the_wechat_server(
    service_env: dict[str, str], web_url: str, saved_options: None
) -> None:
    root = await root_console(web_url)
    open_id = f"o{secrets.token_hex(8)}"
    async with methods_web(service_env, root) as (app, _, wechat), browser(app) as client:
        wrong = (await client.get("/api/oauth/wechat", params={"code": "000000"})).json()
        assert wrong["success"] is False and "expired" in wrong["message"]
        missing = (await client.get("/api/oauth/wechat")).json()
        assert missing["success"] is False
        code = wechat.issue_code(open_id)
        first = (await client.get("/api/oauth/wechat", params={"code": code})).json()
        assert first["success"] is True and first["data"]["username"].startswith("wechat_")
        again = (await client.get("/api/oauth/wechat", params={"code": code})).json()
        assert again["success"] is False  # a code works once
        async with browser(app) as other:
            second = await other.get(
                "/api/oauth/wechat", params={"code": wechat.issue_code(open_id)}
            )
            assert second.json()["data"]["id"] == first["data"]["id"]
        await set_options(await app_root(app), {"WeChatServerToken": "wrong-token"})
        async with browser(app) as stranger:
            refused = await stranger.get(
                "/api/oauth/wechat", params={"code": wechat.issue_code(open_id)}
            )
        assert refused.json()["success"] is False


async def test_status_advertises_each_method_while_it_is_switched_on(
    service_env: dict[str, str], web_url: str, saved_options: None
) -> None:
    root = await root_console(web_url)
    async with methods_web(service_env, root) as (app, _, _), browser(app) as client:
        status = (await client.get("/api/status")).json()["data"]
        assert status["linuxdo_oauth"] and status["idcflare_oauth"]
        assert status["telegram_oauth"] and status["wechat_login"]
        assert status["linuxdo_minimum_trust_level"] == 2
        assert status["telegram_bot_name"] == "veloera_test_bot"
        assert BOT_TOKEN not in str(status) and CLIENT_SECRET not in str(status)
        await set_options(await app_root(app), SWITCHES_OFF)
        status = (await client.get("/api/status")).json()["data"]
        assert not any(status[k] for k in ("linuxdo_oauth", "telegram_oauth", "wechat_login"))


def test_status_leaves_out_a_method_whose_credentials_are_missing() -> None:
    """Option writes refuse to clear a credential while its switch is on, but options imported
    from an upstream database may lack one: such a method is not advertised."""
    secrets_ = {"TelegramOAuthEnabled": "true", "TelegramBotName": "bot", "TelegramBotToken": ""}
    secrets_ |= {
        "WeChatAuthEnabled": "true",
        "WeChatServerAddress": "http://w",
        "WeChatServerToken": "t",
    }
    status = _auth_status({}, secrets_)
    assert status["telegram_oauth"] is False and status["wechat_login"] is True
