"""Console security: credentials revoked on password change, access token rotation, logout,
cookies, password reset answers."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.helpers import Console, create_user, login, root_console

pytestmark = pytest.mark.integration


async def _self_status(web_url: str, user_id: int, **auth: str) -> int:
    headers = {"Veloera-User": str(user_id)}
    if "token" in auth:
        headers["Authorization"] = f"Bearer {auth['token']}"
    cookies = {"session": auth["cookie"]} if "cookie" in auth else None
    async with httpx.AsyncClient(base_url=web_url, timeout=10.0, cookies=cookies) as client:
        reply = await client.get("/api/user/self", headers=headers)
    return reply.status_code


async def _username(console: Console) -> str:
    return str((await console.call("GET", "/api/user/self"))["username"])


async def test_password_change_revokes_other_sessions_and_the_access_token(web_url: str) -> None:
    root = await root_console(web_url)
    first, user_id = await create_user(root, quota=0)
    name = await _username(first)
    second = await login(web_url, name, "password123")
    try:
        token = await first.call("GET", "/api/user/token")
        assert await _self_status(web_url, user_id, token=token) == 200
        await first.call(
            "PUT",
            "/api/user/self",
            json={"password": "newpass456", "original_password": "password123"},
        )
        assert (await first.envelope("GET", "/api/user/self"))["success"] is True
        assert (
            await second.client.get("/api/user/self", headers={"Veloera-User": str(user_id)})
        ).status_code == 401
        assert await _self_status(web_url, user_id, token=token) == 401
        third = await login(web_url, name, "newpass456")
        await root.call("PUT", "/api/user/", json={"id": user_id, "password": "adminset789"})
        for console in (first, third):
            reply = await console.client.get(
                "/api/user/self", headers={"Veloera-User": str(user_id)}
            )
            assert reply.status_code == 401
        await third.aclose()
    finally:
        await first.aclose()
        await second.aclose()
        await root.aclose()


async def test_issuing_an_access_token_rotates_it(web_url: str) -> None:
    root = await root_console(web_url)
    user, user_id = await create_user(root, quota=0)
    try:
        old = await user.call("GET", "/api/user/token")
        new = await user.call("GET", "/api/user/token")
        assert old != new
        assert await _self_status(web_url, user_id, token=old) == 401
        assert await _self_status(web_url, user_id, token=new) == 200
    finally:
        await user.aclose()
        await root.aclose()


async def test_webhook_secret_is_never_shown_back(web_url: str, infra: Any) -> None:
    root = await root_console(web_url)
    user, user_id = await create_user(root, quota=0)
    secret = "whsec-do-not-show-1234"
    try:
        await user.call("PUT", "/api/user/setting", json={"webhook_secret": secret})
        own = await user.call("GET", "/api/user/self")
        admin_view = await root.call("GET", f"/api/user/{user_id}")
        listed = await root.call("GET", "/api/user/search", params={"keyword": own["username"]})
        for shown in (own, admin_view, listed["items"][0]):
            assert secret not in shown["setting"]
            assert json.loads(shown["setting"])["webhook_secret"] == "***"
        # A form that sends the masked value back keeps the secret.
        await user.call(
            "PUT", "/api/user/setting", json={"webhook_secret": "***", "show_ip_in_logs": True}
        )
        conn = await asyncpg.connect(infra.database_url)
        try:
            stored = await conn.fetchval(
                "SELECT setting FROM accounts.users WHERE id = $1", user_id
            )
        finally:
            await conn.close()
        assert json.loads(stored)["webhook_secret"] == secret
    finally:
        await user.aclose()
        await root.aclose()
