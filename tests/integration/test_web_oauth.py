"""GitHub and OpenID Connect sign-in against a loopback OAuth provider fake (discovery,
token and userinfo endpoints), on web apps built in this process whose provider URLs point at
the fake, with the session's accounts and billing services behind them."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from services.web.app import create_app
from services.web.settings import load_settings
from tests.fakes.signin import FakeOAuthProvider, LoopbackServer
from tests.helpers import Console, create_user, root_console

pytestmark = pytest.mark.integration

CLIENT_ID, CLIENT_SECRET = "veloera-client", "client-secret-0123456789"
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
    """GitHub and OIDC switched on against `fake`, and a web app that talks to it."""
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
    try:
        async with app.router.lifespan_context(app):
            yield app
    finally:
        await set_options(
            root,
            {"GitHubOAuthEnabled": "false", "oidc.enabled": "false", "RegisterEnabled": "true"},
        )


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


def github_user(name: str = "Octo Cat") -> dict[str, Any]:
    return {"id": secrets.randbelow(10**9), "login": f"octo{secrets.token_hex(3)}", "name": name}


async def test_github_registers_then_logs_in_with_signup_rewards(
    service_env: dict[str, str], web_url: str
) -> None:
    root = await root_console(web_url)
    rewards = {"QuotaForNewUser": "777", "QuotaForInvitee": "100", "QuotaForInviter": "50"}
    await set_options(root, rewards)
    inviter, _ = await create_user(root, quota=0)
    aff = await inviter.call("GET", "/api/user/aff")
    user = github_user()
    try:
        async with provider() as fake, signin_web(service_env, root, fake) as app:
            async with browser(app) as client:
                first = await sign_in(client, fake, user, aff=aff)
                assert first["success"] is True, first
                me = first["data"]
                assert me["username"] == f"github_{me['id']}"
                assert me["display_name"] == "Octo Cat"
                headers = {"Veloera-User": str(me["id"])}
                self_ = (await client.get("/api/user/self", headers=headers)).json()["data"]
                assert self_["github_id"] == str(user["id"])
                assert self_["quota"] == 777 + 100  # new-user and invitee rewards
                assert self_["inviter_id"] == inviter.user_id
            async with browser(app) as again:  # another browser, same GitHub account
                second = await sign_in(again, fake, user)
                assert second["success"] is True and second["data"]["id"] == me["id"]
            # the client secret went to the token endpoint, the code once
            assert fake.token_requests[-1]["client_secret"] == CLIENT_SECRET
        assert (await inviter.call("GET", "/api/user/self"))["aff_quota"] == 50
    finally:
        await set_options(root, {key: "0" for key in rewards})
        await inviter.aclose()
        await root.aclose()


async def test_oidc_with_discovery_and_registration_closed(
    service_env: dict[str, str], web_url: str
) -> None:
    root = await root_console(web_url)
    subject = f"oidc-subject-{secrets.token_hex(4)}"
    profile = {"sub": subject, "preferred_username": "alice", "email": f"{subject}@example.com"}
    try:
        async with provider() as fake, signin_web(service_env, root, fake) as app:
            async with browser(app) as client:
                status = (await client.get("/api/status")).json()["data"]
                assert status["oidc_enabled"] is True and status["github_oauth"] is True
                # only the well-known URL is configured: the console's authorize link is discovered
                assert status["oidc_authorization_endpoint"] == f"{fake.url}/authorize"
                created = await sign_in(client, fake, profile, "oidc")
                assert created["success"] is True, created
                assert created["data"]["username"].startswith("oidc_")
                assert created["data"]["display_name"] == "alice"
            # the code went back with the redirect URI the console page has
            assert fake.token_requests[-1]["redirect_uri"] == "http://console.test/oauth/oidc"
            await set_options(root, {"RegisterEnabled": "false"})
            async with browser(app) as client:
                refused = await sign_in(client, fake, {"sub": "someone-new"}, "oidc")
                assert refused["success"] is False
                assert "registration is closed" in refused["message"]
                # an existing identity still logs in
                back = await sign_in(client, fake, profile, "oidc")
                assert back["success"] is True and back["data"]["id"] == created["data"]["id"]
    finally:
        await root.aclose()


async def test_bind_unbind_and_one_user_per_identity(
    service_env: dict[str, str], web_url: str
) -> None:
    root = await root_console(web_url)
    alice, alice_id = await create_user(root, quota=0)
    bob, bob_id = await create_user(root, quota=0)
    user = github_user()
    try:
        async with provider() as fake, signin_web(service_env, root, fake) as app:
            async with browser(app) as client:
                client.cookies.set("session", alice.client.cookies["session"])
                as_alice = {"Veloera-User": str(alice_id)}
                bound = await sign_in(client, fake, user, headers=as_alice)
                assert bound["success"] is True and bound["data"]["action"] == "bind", bound
                assert (await alice.call("GET", "/api/user/self"))["github_id"] == str(user["id"])
            async with browser(app) as client:
                # the same GitHub account cannot be bound to bob as well
                client.cookies.set("session", bob.client.cookies["session"])
                taken = await sign_in(client, fake, user, headers={"Veloera-User": str(bob_id)})
                assert taken["success"] is False
                assert "already bound to another user" in taken["message"]
            async with browser(app) as stranger:
                # signing in with it is signing in as alice
                login = await sign_in(stranger, fake, user)
                assert login["success"] is True and login["data"]["id"] == alice_id
            async with browser(app) as client:
                client.cookies.set("session", alice.client.cookies["session"])
                unbound = await client.delete("/api/oauth/github/bind", headers=as_alice)
                body = unbound.json()
                assert body["success"] is True and body["data"]["github_id"] == ""
                again = await client.delete("/api/oauth/github/bind", headers=as_alice)
                assert again.json()["success"] is False
                assert "no GitHub account is bound" in again.json()["message"]
    finally:
        await alice.aclose()
        await bob.aclose()
        await root.aclose()


async def test_state_mismatch_replay_and_provider_down_are_refused(
    service_env: dict[str, str], web_url: str
) -> None:
    root = await root_console(web_url)
    user = github_user()
    try:
        async with provider() as fake, signin_web(service_env, root, fake) as app:
            async with browser(app) as client:
                await client.get("/api/oauth/state")
                forged = await client.get(
                    "/api/oauth/github", params={"code": fake.issue_code(user), "state": "x" * 12}
                )
                assert forged.status_code == 403
                assert "state is empty or does not match" in forged.json()["message"]
                assert fake.token_requests == []  # refused before the provider was asked
            async with browser(app) as client:
                # no state at all in this browser
                blank = await client.get("/api/oauth/github", params={"code": "c", "state": "s"})
                assert blank.status_code == 403
            async with browser(app) as client:
                state = (await client.get("/api/oauth/state")).json()["data"]
                params = {"code": fake.issue_code(user), "state": state}
                assert (await client.get("/api/oauth/github", params=params)).json()["success"]
                replay = await client.get("/api/oauth/github", params=params)
                assert replay.status_code == 403  # the state worked once
            async with browser(app) as client:
                # consent denied: the provider comes back with an error and no code
                state = (await client.get("/api/oauth/state")).json()["data"]
                denied = await client.get(
                    "/api/oauth/github", params={"error": "access_denied", "state": state}
                )
                assert "no authorization code" in denied.json()["message"]
            async with browser(app) as client:
                fake.down = True
                down = await sign_in(client, fake, user)
                assert down == {
                    "success": False,
                    "message": "cannot reach GitHub to finish the sign-in, please retry later",
                    "data": None,
                }
                fake.down = False
                refused = await client.get(
                    "/api/oauth/github",
                    params={
                        "code": "never-issued",
                        "state": (await client.get("/api/oauth/state")).json()["data"],
                    },
                )
                assert "GitHub refused the sign-in (invalid_grant)" in refused.json()["message"]
    finally:
        await root.aclose()


async def test_a_disabled_user_cannot_sign_in_with_a_bound_identity(
    service_env: dict[str, str], web_url: str
) -> None:
    root = await root_console(web_url)
    user = github_user()
    try:
        async with provider() as fake, signin_web(service_env, root, fake) as app:
            async with browser(app) as client:
                created = await sign_in(client, fake, user)
                assert created["success"] is True, created
            await root.call(
                "POST", "/api/user/manage", json={"id": created["data"]["id"], "action": "disable"}
            )
            async with browser(app) as client:
                refused = await sign_in(client, fake, user)
                assert refused["success"] is False and "disabled" in refused["message"]
                assert client.cookies.get("session") is None
    finally:
        await root.aclose()
