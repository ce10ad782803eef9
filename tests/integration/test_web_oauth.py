"""GitHub and OpenID Connect sign-in against a loopback OAuth provider fake (discovery,
token and userinfo endpoints), on web apps built in this process whose provider URLs point at
the fake, with the session's accounts and billing services behind them."""

from __future__ import annotations

import secrets

import pytest

from tests.support.helpers import create_user, root_console
from tests.support.web_kit import (
    CLIENT_SECRET,
    browser,
    github_user,
    provider,
    set_options,
    sign_in,
    signin_web,
)

pytestmark = pytest.mark.integration


async def test_github_registers_then_logs_in_with_signup_rewards(
    service_env: dict[str, str], web_url: str, saved_options: None
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
        await inviter.aclose()
        await root.aclose()


async def test_oidc_with_discovery_and_registration_closed(
    service_env: dict[str, str], web_url: str, saved_options: None
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
    service_env: dict[str, str], web_url: str, saved_options: None
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
    service_env: dict[str, str], web_url: str, saved_options: None
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
    service_env: dict[str, str], web_url: str, saved_options: None
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
