"""TOTP two-factor authentication through the console API against the session's services:
enrolment with a QR code, the login's second step (no session before it), the clock window,
replayed codes, one-time backup codes, disabling, and an administrator's reset. Codes are
computed with pyotp as an authenticator app would."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import httpx
import pyotp
import pytest

from tests.support import web_kit as oauth
from tests.support.helpers import Console, create_user, root_console
from tests.support.web_kit import github_user

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("closes_clients")]

PASSWORD = "password123"
# Wrong codes count as failed logins per address: these tests come from their own addresses
# (the web service trusts its loopback peer's X-Forwarded-For), so the suite's other logins
# from 127.0.0.1 never meet their lock.
ADDRESS = {"X-Forwarded-For": "203.0.113.50"}


async def new_user(root: Console) -> tuple[Console, int]:
    user, user_id = await create_user(root, quota=0)
    user.client.headers.update(ADDRESS)
    return user, user_id


def code_at(secret: str, steps_from_now: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_from_now)


async def username_of(console: Console) -> str:
    me = await console.call("GET", "/api/user/self")
    return str(me["username"])


async def enrol(console: Console, steps_from_now: int = 0) -> tuple[str, list[str]]:
    """Two-factor switched on for the console's user: (the secret, the backup codes)."""
    setup = await console.call("POST", "/api/user/2fa/setup")
    secret = setup["secret"]
    done = await console.call(
        "POST", "/api/user/2fa/enable", json={"code": code_at(secret, steps_from_now)}
    )
    return secret, done["backup_codes"]


async def password_step(
    web_url: str, username: str, address: dict[str, str] = ADDRESS
) -> tuple[httpx.AsyncClient, dict[str, Any]]:
    client = httpx.AsyncClient(base_url=web_url, timeout=10.0, headers=address)
    reply = await client.post("/api/user/login", json={"username": username, "password": PASSWORD})
    return client, reply.json()


async def second_step(client: httpx.AsyncClient, code: Any) -> dict[str, Any]:
    body: dict[str, Any] = (await client.post("/api/user/login/2fa", json={"code": code})).json()
    return body


async def has_session(client: httpx.AsyncClient, user_id: int) -> bool:
    reply = await client.get("/api/user/self", headers={"Veloera-User": str(user_id)})
    return bool(reply.json()["success"])


async def test_enrolment_shows_a_qr_code_and_needs_a_right_first_code(web_url: str) -> None:
    root = await root_console(web_url)
    user, _ = await new_user(root)
    setup = await user.call("POST", "/api/user/2fa/setup")
    assert setup["qr_code"].startswith("data:image/svg+xml")
    assert setup["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={setup['secret']}" in setup["otpauth_uri"]
    wrong = await user.envelope("POST", "/api/user/2fa/enable", json={"code": "000000"})
    if code_at(setup["secret"]) != "000000":
        assert wrong["success"] is False and "wrong" in wrong["message"]
        status = await user.call("GET", "/api/user/2fa/status")
        assert status["enabled"] is False
    done = await user.call("POST", "/api/user/2fa/enable", json={"code": code_at(setup["secret"])})
    codes = done["backup_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    status = await user.call("GET", "/api/user/2fa/status")
    assert status == {"enabled": True, "backup_codes_left": 10}
    again = await user.envelope("POST", "/api/user/2fa/setup")
    assert again["success"] is False and "already enabled" in again["message"]
    twice = await user.envelope(
        "POST", "/api/user/2fa/enable", json={"code": code_at(setup["secret"], 1)}
    )
    assert twice["success"] is False and "already enabled" in twice["message"]
    assert (await user.call("GET", "/api/user/2fa/status"))["backup_codes_left"] == 10


async def test_login_takes_a_second_step_and_refuses_a_replayed_code(web_url: str) -> None:
    root = await root_console(web_url)
    user, user_id = await new_user(root)
    # enrolled with the code of the previous step: the clock window accepts it
    secret, _ = await enrol(user, steps_from_now=-1)
    username = await username_of(user)

    client, first = await password_step(web_url, username)
    async with contextlib.aclosing(client):
        assert first["success"] is True and first["data"] == {"require_2fa": True}
        assert not await has_session(client, user_id)
        wrong = await second_step(client, "999999" if code_at(secret) != "999999" else "999998")
        assert wrong["success"] is False and "wrong" in wrong["message"]
        assert not await has_session(client, user_id)
        two_steps_ahead = await second_step(client, code_at(secret, 2))
        assert two_steps_ahead["success"] is False  # outside the ±1 step window
        right = await second_step(client, code_at(secret))
        assert right["success"] is True and right["data"]["id"] == user_id
        assert await has_session(client, user_id)

    # the same code (same step) in another login is refused: one code signs in once
    client, first = await password_step(web_url, username)
    async with contextlib.aclosing(client):
        replay = await second_step(client, code_at(secret))
        assert replay["success"] is False
        assert not await has_session(client, user_id)
        later = await second_step(client, code_at(secret, 1))  # the next step still works
        assert later["success"] is True
        assert await has_session(client, user_id)


async def test_a_backup_code_works_once(web_url: str) -> None:
    root = await root_console(web_url)
    user, user_id = await new_user(root)
    _, backup = await enrol(user)
    username = await username_of(user)
    client, _ = await password_step(web_url, username)
    async with contextlib.aclosing(client):
        used = await second_step(client, backup[0].upper())  # typed in capitals
        assert used["success"] is True and await has_session(client, user_id)
    status = await user.call("GET", "/api/user/2fa/status")
    assert status["backup_codes_left"] == 9
    client, _ = await password_step(web_url, username)
    async with contextlib.aclosing(client):
        again = await second_step(client, backup[0])
        assert again["success"] is False and not await has_session(client, user_id)
        other = await second_step(client, backup[1])
        assert other["success"] is True


async def test_no_second_step_without_a_password_first_and_bad_input_is_refused(
    web_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=web_url, timeout=10.0, headers=ADDRESS) as client:
        body = await second_step(client, "123456")
        assert body["success"] is False and "expired" in body["message"]
    root = await root_console(web_url)
    user, _ = await new_user(root)
    await enrol(user)
    client, _ = await password_step(web_url, await username_of(user))
    async with contextlib.aclosing(client):
        for bad in (None, "", ["123456"], {"a": 1}, "1" * 200):
            reply = await client.post("/api/user/login/2fa", json={"code": bad})
            assert reply.status_code == 200 and reply.json()["success"] is False, bad
        reply = await client.post("/api/user/login/2fa", content=b"not json")
        assert reply.status_code < 500 and reply.json()["success"] is False


async def test_disable_needs_a_code_and_admin_can_reset(web_url: str) -> None:
    root = await root_console(web_url)
    user, user_id = await new_user(root)
    secret, backup = await enrol(user)
    username = await username_of(user)
    refused = await user.envelope("POST", "/api/user/2fa/disable", json={"code": "abcde-fghij"})
    assert refused["success"] is False
    await user.call("POST", "/api/user/2fa/disable", json={"code": backup[3]})
    client, first = await password_step(web_url, username)
    async with contextlib.aclosing(client):
        assert first["data"]["id"] == user_id and await has_session(client, user_id)

    await enrol(user, steps_from_now=1)
    other, _ = await new_user(root)
    denied = await other.envelope("DELETE", f"/api/user/{user_id}/2fa")
    assert denied["success"] is False
    await root.call("DELETE", f"/api/user/{user_id}/2fa")
    client, first = await password_step(web_url, username)
    async with contextlib.aclosing(client):
        assert first["data"]["id"] == user_id and await has_session(client, user_id)
    assert secret  # the old secret is gone with the reset


async def test_wrong_codes_lock_the_second_step_like_wrong_passwords(web_url: str) -> None:
    root = await root_console(web_url)
    user, user_id = await new_user(root)
    secret, _ = await enrol(user)
    address = {"X-Forwarded-For": "203.0.113.51"}
    client, _ = await password_step(web_url, await username_of(user), address)
    async with contextlib.aclosing(client):
        totp = pyotp.TOTP(secret)
        wrong = next(c for c in ("000000", "111111") if not totp.verify(c, valid_window=1))
        for _ in range(5):
            assert (await second_step(client, wrong))["success"] is False
        locked = await second_step(client, code_at(secret, 1))
        assert locked["success"] is False and "too many failed" in locked["message"]
        assert not await has_session(client, user_id)


async def test_an_oauth_sign_in_also_waits_for_the_second_factor(
    service_env: dict[str, str], web_url: str, saved_options: None
) -> None:
    root = await root_console(web_url)
    user = github_user()
    async with oauth.provider() as fake, oauth.signin_web(service_env, root, fake) as app:
        async with oauth.browser(app) as first:
            signed_up = await oauth.sign_in(first, fake, user)
            user_id = signed_up["data"]["id"]
            secret, _ = await enrol(Console(client=first, user_id=user_id))
        async with oauth.browser(app) as client:
            body = await oauth.sign_in(client, fake, user)
            assert body["success"] is True and body["data"] == {"require_2fa": True}
            assert not await has_session(client, user_id)
            done = await second_step(client, code_at(secret, 1))
            assert done["success"] is True and done["data"]["id"] == user_id
            assert await has_session(client, user_id)
