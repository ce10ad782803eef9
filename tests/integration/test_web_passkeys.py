"""Passkeys (WebAuthn) through the console API with a software authenticator: register from
a signed-in session, sign in from a fresh browser without a username, a replayed or cloned
assertion refused, another origin refused, deleted passkeys stop working, bad input refused
in the envelope. The web app runs in this process with its relying party set by
WEBAUTHN_ORIGIN; accounts and billing are the session's services."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from services.web.app import create_app
from services.web.settings import load_settings
from tests.fakes.authenticator import SoftAuthenticator
from tests.support.helpers import create_user, root_console, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("closes_clients")]

ORIGIN = "http://console.test"
PASSWORD = "password123"
OFF = {
    "GLOBAL_API_RATE_LIMIT_ENABLE": "false",
    "GLOBAL_WEB_RATE_LIMIT_ENABLE": "false",
    "CRITICAL_RATE_LIMIT_ENABLE": "false",
}


@contextlib.asynccontextmanager
async def passkey_web(service_env: dict[str, str]) -> AsyncIterator[Starlette]:
    app = create_app(load_settings({**service_env, **OFF, "WEBAUTHN_ORIGIN": ORIGIN}))
    async with app.router.lifespan_context(app):
        yield app


def browser(app: Starlette) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 40000))
    return httpx.AsyncClient(transport=transport, base_url=ORIGIN)


async def signed_in_browser(app: Starlette, username: str) -> tuple[httpx.AsyncClient, int]:
    client = browser(app)
    reply = await client.post("/api/user/login", json={"username": username, "password": PASSWORD})
    body = reply.json()
    assert body["success"], body
    return client, int(body["data"]["id"])


async def post(
    client: httpx.AsyncClient, path: str, user_id: int = 0, **body: Any
) -> dict[str, Any]:
    headers = {"Veloera-User": str(user_id)} if user_id else {}
    reply = await client.post(path, json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


async def new_user(web_url: str) -> str:
    root = await root_console(web_url)
    user, _ = await create_user(root, quota=0)
    me = await user.call("GET", "/api/user/self")
    return str(me["username"])


async def register(
    client: httpx.AsyncClient, user_id: int, key: SoftAuthenticator, name: str = "laptop"
) -> dict[str, Any]:
    options = await post(client, "/api/user/passkey/register/options", user_id)
    assert options["success"], options
    assert options["data"]["rp"]["id"] == "console.test"
    credential = key.register(options["data"])
    return await post(
        client, "/api/user/passkey/register", user_id, credential=credential, name=name
    )


async def passkey_login(
    client: httpx.AsyncClient, key: SoftAuthenticator, **kw: Any
) -> dict[str, Any]:
    options = await post(client, "/api/user/passkey/login/options")
    assert options["success"] and options["data"].get("allowCredentials", []) == []
    return await post(
        client, "/api/user/passkey/login", credential=key.assert_(options["data"], **kw)
    )


async def test_register_then_sign_in_with_a_passkey(
    service_env: dict[str, str], web_url: str
) -> None:
    username = await new_user(web_url)
    key = SoftAuthenticator(ORIGIN)
    async with passkey_web(service_env) as app:
        client, user_id = await signed_in_browser(app, username)
        async with contextlib.aclosing(client):
            added = await register(client, user_id, key)
            assert added["success"], added
            listed = (
                await client.get("/api/user/passkey", headers={"Veloera-User": str(user_id)})
            ).json()["data"]
            assert [p["name"] for p in listed] == ["laptop"]
        async with browser(app) as fresh:  # another browser, no username typed
            body = await passkey_login(fresh, key)
            assert body["success"] is True and body["data"]["id"] == user_id
            me = await fresh.get("/api/user/self", headers={"Veloera-User": str(user_id)})
            assert me.json()["data"]["username"] == username


async def test_replayed_cloned_and_foreign_assertions_are_refused(
    service_env: dict[str, str], web_url: str
) -> None:
    username = await new_user(web_url)
    key = SoftAuthenticator(ORIGIN)
    async with passkey_web(service_env) as app:
        client, user_id = await signed_in_browser(app, username)
        async with contextlib.aclosing(client):
            assert (await register(client, user_id, key))["success"]
            # a credential created on another site is refused
            options = await post(client, "/api/user/passkey/register/options", user_id)
            other = SoftAuthenticator(ORIGIN).register(options["data"], origin="http://evil.test")
            refused = await post(client, "/api/user/passkey/register", user_id, credential=other)
            assert refused["success"] is False and "not accepted" in refused["message"]
        async with browser(app) as fresh:
            options = (await post(fresh, "/api/user/passkey/login/options"))["data"]
            with_challenge = fresh.cookies["veloera_flow"]
            assertion = key.assert_(options)
            first = await post(fresh, "/api/user/passkey/login", credential=assertion)
            assert first["success"] is True
            replay = await post(fresh, "/api/user/passkey/login", credential=assertion)
            assert replay["success"] is False and "expired" in replay["message"]
        async with browser(app) as thief:  # the cookie holding the challenge copied too
            thief.cookies.set("veloera_flow", with_challenge)
            stolen = await post(thief, "/api/user/passkey/login", credential=assertion)
            assert stolen["success"] is False and "expired" in stolen["message"]
        async with browser(app) as clone:  # the counter did not move on: a cloned key
            cloned = await passkey_login(clone, key, count=False)
            assert cloned["success"] is False
            assert not (
                await clone.get("/api/user/self", headers={"Veloera-User": str(user_id)})
            ).json()["success"]
        async with browser(app) as wrong_rp:  # signed for another relying party
            body = await passkey_login(wrong_rp, key, rp_id="evil.test")
            assert body["success"] is False


async def test_deleted_and_unknown_passkeys_do_not_sign_in(
    service_env: dict[str, str], web_url: str
) -> None:
    username = await new_user(web_url)
    key = SoftAuthenticator(ORIGIN)
    async with passkey_web(service_env) as app:
        client, user_id = await signed_in_browser(app, username)
        headers = {"Veloera-User": str(user_id)}
        async with contextlib.aclosing(client):
            assert (await register(client, user_id, key))["success"]
            listed = (await client.get("/api/user/passkey", headers=headers)).json()["data"]
            deleted = await client.delete(f"/api/user/passkey/{listed[0]['id']}", headers=headers)
            assert deleted.json()["success"] is True
            again = await client.delete(f"/api/user/passkey/{listed[0]['id']}", headers=headers)
            assert again.json()["success"] is False
        async with browser(app) as fresh:
            body = await passkey_login(fresh, key)
            assert body["success"] is False and "not registered" in body["message"]
            unknown = await passkey_login(fresh, SoftAuthenticator(ORIGIN))
            assert unknown["success"] is False


async def test_bad_passkey_input_is_refused_in_the_envelope(
    service_env: dict[str, str], web_url: str
) -> None:
    async with passkey_web(service_env) as app, browser(app) as client:
        # WEBAUTHN_ORIGIN fixes the relying party whatever host a request names
        transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://phish.test") as proxy:
            options = await post(proxy, "/api/user/passkey/login/options")
            assert options["data"]["rpId"] == "console.test"
        no_options = await post(
            client, "/api/user/passkey/login", credential={"id": unique_name(), "response": {}}
        )
        assert no_options["success"] is False and "expired" in no_options["message"]
        bad_credentials: list[Any] = [None, "x", [], {"id": 5}, {"id": "%%%", "rawId": "%%%"}]
        for bad in [*bad_credentials, {"id": "abc"}]:
            await post(client, "/api/user/passkey/login/options")
            body = await post(client, "/api/user/passkey/login", credential=bad)
            assert body["success"] is False, bad
        reply = await client.post("/api/user/passkey/login", content=b"{")
        assert reply.status_code < 500 and reply.json()["success"] is False
