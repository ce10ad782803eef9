"""The web console's management API against running accounts, billing and web services."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.helpers import (
    ROOT_PASSWORD,
    ROOT_USERNAME,
    Console,
    create_token,
    create_user,
    root_console,
    unique_name,
)

pytestmark = pytest.mark.integration

VELOERA_PROJ = Path(__file__).resolve().parents[2] / "VELOERA_PROJ"


async def _get(web_url: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=web_url, timeout=10.0) as client:
        return await client.get(path, headers=headers)


async def test_setup_then_status_reports_initialized(web_url: str) -> None:
    root = await root_console(web_url)
    try:
        setup = (await _get(web_url, "/api/setup")).json()
        assert setup["success"] is True
        assert setup["data"] == {"status": True, "root_init": True, "database_type": "postgres"}
        status = (await _get(web_url, "/api/status")).json()
        assert status["success"] is True
        assert status["data"]["setup"] is True
        assert status["data"]["system_name"]
        assert status["data"]["quota_per_unit"] > 0
        assert status["data"]["display_in_currency"] is True
        again = await root.client.post(
            "/api/setup",
            json={"username": "other", "password": "password99", "confirmPassword": "password99"},
        )
        assert again.json()["success"] is False
        root_self = await root.call("GET", "/api/user/self")
        assert root_self["username"] == ROOT_USERNAME
        assert root_self["role"] == 100
    finally:
        await root.aclose()


async def test_setup_validates_passwords(web_url: str) -> None:
    async with httpx.AsyncClient(base_url=web_url, timeout=10.0) as client:
        mismatch = await client.post(
            "/api/setup",
            json={"username": "x", "password": "password1", "confirmPassword": "password2"},
        )
        short = await client.post(
            "/api/setup", json={"username": "x", "password": "short", "confirmPassword": "short"}
        )
    assert mismatch.json()["success"] is False
    assert "match" in mismatch.json()["message"]
    assert short.json()["success"] is False
    assert "8" in short.json()["message"]


async def test_login_sets_cookie_and_requires_matching_user_header(web_url: str) -> None:
    root = await root_console(web_url)
    user, user_id = await create_user(root, quota=12_345)
    try:
        cookie_header = ""
        async with httpx.AsyncClient(base_url=web_url, timeout=10.0) as client:
            reply = await client.post(
                "/api/user/login", json={"username": ROOT_USERNAME, "password": ROOT_PASSWORD}
            )
            cookie_header = reply.headers["set-cookie"]
        assert cookie_header.startswith("session=")
        assert "httponly" in cookie_header.lower()
        assert "samesite=lax" in cookie_header.lower()

        me = await user.call("GET", "/api/user/self")
        assert me["id"] == user_id
        assert me["quota"] == 12_345
        assert me["used_quota"] == 0
        assert me["request_count"] == 0

        missing = await user.client.get("/api/user/self")
        assert missing.status_code == 401
        assert missing.json()["success"] is False
        wrong = await user.client.get("/api/user/self", headers={"Veloera-User": str(root.user_id)})
        assert wrong.status_code == 401
        assert wrong.json()["success"] is False
        anonymous = await _get(web_url, "/api/user/self", {"Veloera-User": str(user_id)})
        assert anonymous.status_code == 401

        await user.call("GET", "/api/user/logout")
        after = await user.envelope("GET", "/api/user/self")
        assert after["success"] is False
    finally:
        await user.aclose()
        await root.aclose()


async def test_wrong_password_is_refused(web_url: str) -> None:
    root = await root_console(web_url)
    await root.aclose()
    async with httpx.AsyncClient(base_url=web_url, timeout=10.0) as client:
        reply = await client.post(
            "/api/user/login", json={"username": ROOT_USERNAME, "password": "not-the-password"}
        )
    assert reply.json()["success"] is False
    assert "set-cookie" not in reply.headers


async def test_access_token_authenticates_with_user_header(web_url: str) -> None:
    root = await root_console(web_url)
    user, user_id = await create_user(root, quota=0)
    try:
        access_token = await user.call("GET", "/api/user/token")
        assert isinstance(access_token, str)
        assert len(access_token) >= 16
        for authorization in (access_token, f"Bearer {access_token}"):
            reply = await _get(
                web_url,
                "/api/user/self",
                {"Authorization": authorization, "Veloera-User": str(user_id)},
            )
            assert reply.json()["success"] is True
            assert reply.json()["data"]["id"] == user_id
        mismatch = await _get(
            web_url,
            "/api/user/self",
            {"Authorization": access_token, "Veloera-User": str(root.user_id)},
        )
        assert mismatch.status_code == 401
        bogus = await _get(
            web_url, "/api/user/self", {"Authorization": "x" * 32, "Veloera-User": str(user_id)}
        )
        assert bogus.status_code == 401
    finally:
        await user.aclose()
        await root.aclose()


async def _token_ids(console: Console) -> set[int]:
    page = await console.call("GET", "/api/token/", params={"p": 1, "size": 100})
    return {int(item["id"]) for item in page["items"]}


async def test_token_crud_round_trip(web_url: str) -> None:
    root = await root_console(web_url)
    user, _ = await create_user(root, quota=100_000)
    other, _ = await create_user(root, quota=0)
    try:
        token = await create_token(
            user,
            remain_quota=5_000,
            unlimited_quota=False,
            model_limits_enabled=True,
            model_limits="gpt-4o,gpt-4o-mini",
            allow_ips="127.0.0.1\n10.0.0.0/8",
        )
        assert len(token["key"]) == 48
        assert not token["key"].startswith("sk-")
        assert token["remain_quota"] == 5_000
        assert token["unlimited_quota"] is False
        assert token["expired_time"] == -1
        assert token["status"] == 1
        assert token["model_limits"] == "gpt-4o,gpt-4o-mini"
        assert token["allow_ips"].split("\n") == ["127.0.0.1", "10.0.0.0/8"]
        assert token["id"] in await _token_ids(user)

        new_name = unique_name("r")
        await user.call(
            "PUT", "/api/token/", json={"id": token["id"], "name": new_name, "remain_quota": 7_000}
        )
        fetched = await user.call("GET", f"/api/token/{token['id']}")
        assert fetched["name"] == new_name
        assert fetched["remain_quota"] == 7_000
        assert fetched["model_limits"] == "gpt-4o,gpt-4o-mini"

        await user.call(
            "PUT", "/api/token/", params={"status_only": 1}, json={"id": token["id"], "status": 2}
        )
        assert (await user.call("GET", f"/api/token/{token['id']}"))["status"] == 2

        foreign = await other.envelope("GET", f"/api/token/{token['id']}")
        assert foreign["success"] is False
        assert token["id"] not in await _token_ids(other)

        await user.call("DELETE", f"/api/token/{token['id']}")
        assert token["id"] not in await _token_ids(user)
        gone = await user.envelope("GET", f"/api/token/{token['id']}")
        assert gone["success"] is False
    finally:
        await other.aclose()
        await user.aclose()
        await root.aclose()


async def test_exhausted_token_cannot_be_reenabled(web_url: str) -> None:
    root = await root_console(web_url)
    user, _ = await create_user(root, quota=0)
    try:
        token = await create_token(user, remain_quota=0, unlimited_quota=False)
        await user.call(
            "PUT", "/api/token/", params={"status_only": 1}, json={"id": token["id"], "status": 2}
        )
        reenable = await user.envelope(
            "PUT", "/api/token/", params={"status_only": 1}, json={"id": token["id"], "status": 1}
        )
        assert reenable["success"] is False
        assert (await user.call("GET", f"/api/token/{token['id']}"))["status"] == 2
    finally:
        await user.aclose()
        await root.aclose()


async def _channel_names(root: Console) -> dict[str, dict[str, Any]]:
    page = await root.call("GET", "/api/channel/", params={"p": 1, "page_size": 100})
    return {item["name"]: item for item in page["items"]}


async def test_channel_crud_and_bad_model_mapping(web_url: str) -> None:
    root = await root_console(web_url)
    try:
        name = unique_name("ch")
        body = {
            "type": 1,
            "name": name,
            "key": "sk-upstream-" + uuid.uuid4().hex,
            "base_url": "http://127.0.0.1:9",
            "models": "gpt-4o,gpt-4o-mini",
            "group": "default,vip",
            "priority": 5,
            "weight": 3,
            "model_mapping": json.dumps({"gpt-4o": "gpt-4o-2024-08-06"}),
        }
        created = await root.call("POST", "/api/channel/", json=body)
        channel_id = int(created["id"])
        listed = (await _channel_names(root))[name]
        assert listed["id"] == channel_id
        assert listed["key"] == ""
        assert listed["models"] == "gpt-4o,gpt-4o-mini"
        assert set(listed["group"].split(",")) == {"default", "vip"}
        assert listed["priority"] == 5
        assert listed["weight"] == 3
        assert json.loads(listed["model_mapping"]) == {"gpt-4o": "gpt-4o-2024-08-06"}

        renamed = unique_name("ch")
        await root.call("PUT", "/api/channel/", json={"id": channel_id, "name": renamed, "key": ""})
        fetched = await root.call("GET", f"/api/channel/{channel_id}")
        assert fetched["name"] == renamed
        assert fetched["models"] == "gpt-4o,gpt-4o-mini"
        assert fetched["key"] != ""

        bad_name = unique_name("ch")
        bad = await root.envelope(
            "POST", "/api/channel/", json={**body, "name": bad_name, "model_mapping": "{not json"}
        )
        assert bad["success"] is False
        assert bad_name not in await _channel_names(root)
        bad_update = await root.envelope(
            "PUT", "/api/channel/", json={"id": channel_id, "model_mapping": "[1, 2]"}
        )
        assert bad_update["success"] is False
        still = await root.call("GET", f"/api/channel/{channel_id}")
        assert json.loads(still["model_mapping"]) == {"gpt-4o": "gpt-4o-2024-08-06"}

        await root.call("DELETE", f"/api/channel/{channel_id}")
        assert renamed not in await _channel_names(root)
    finally:
        await root.aclose()


async def _options(root: Console) -> dict[str, str]:
    items = await root.call("GET", "/api/option/")
    return {item["key"]: item["value"] for item in items}


async def test_options_route_to_billing_and_accounts(web_url: str) -> None:
    root = await root_console(web_url)
    try:
        before = await _options(root)
        ratios = json.loads(before.get("ModelRatio") or "{}")
        model = f"test-model-{uuid.uuid4().hex[:8]}"
        ratios[model] = 2.5
        await root.call(
            "PUT", "/api/option/", json={"key": "ModelRatio", "value": json.dumps(ratios)}
        )

        notice = f"notice {uuid.uuid4().hex}"
        await root.call("PUT", "/api/option/", json={"key": "Notice", "value": notice})
        await root.call("PUT", "/api/option/", json={"key": "LogConsumeEnabled", "value": True})

        after = await _options(root)
        assert json.loads(after["ModelRatio"])[model] == 2.5
        assert after["Notice"] == notice
        assert after["LogConsumeEnabled"] == "true"

        rejected = await root.envelope(
            "PUT", "/api/option/", json={"key": "ReverseProxyProvider", "value": "apache"}
        )
        assert rejected["success"] is False
        assert rejected["message"]
    finally:
        await root.aclose()


async def test_admin_endpoints_refuse_common_user(web_url: str) -> None:
    root = await root_console(web_url)
    user, user_id = await create_user(root, quota=0)
    try:
        for path in ("/api/user/", f"/api/user/{root.user_id}", "/api/channel/", "/api/log/"):
            refused = await user.envelope("GET", path)
            assert refused["success"] is False, path
            assert refused["data"] is None
        refused_option = await user.envelope("GET", "/api/option/")
        assert refused_option["success"] is False
        promote = await user.envelope("PUT", "/api/user/", json={"id": user_id, "quota": 10**12})
        assert promote["success"] is False
        assert (await user.call("GET", "/api/user/self"))["quota"] == 0
        own_logs = await user.call("GET", "/api/log/self", params={"p": 1, "page_size": 10})
        assert own_logs["total"] == len(own_logs["items"])
        assert all(item["user_id"] == user_id for item in own_logs["items"])
        all_logs = await root.call("GET", "/api/log/", params={"p": 1, "page_size": 100})
        assert {item["user_id"] for item in all_logs["items"]} - {user_id}
    finally:
        await user.aclose()
        await root.aclose()


async def test_admin_lists_users_with_wallets(web_url: str) -> None:
    root = await root_console(web_url)
    user, user_id = await create_user(root, quota=4_321)
    try:
        page = await root.call("GET", "/api/user/", params={"p": 0, "page_size": 100})
        assert page["page"] == 1
        assert page["total"] >= 2
        assert any(item["id"] == user_id and item["quota"] == 4_321 for item in page["items"])
        single = await root.call("GET", f"/api/user/{user_id}")
        assert single["quota"] == 4_321
        managed = await root.call(
            "POST", "/api/user/manage", json={"id": user_id, "action": "disable"}
        )
        assert managed["status"] == 2
        disabled = await user.envelope("GET", "/api/user/self")
        assert disabled["success"] is False
    finally:
        await user.aclose()
        await root.aclose()


async def test_veloera_route_serves_the_attribution_file(web_url: str) -> None:
    reply = await _get(web_url, "/veloera")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.text == VELOERA_PROJ.read_text(encoding="utf-8")


async def test_page_has_attribution_and_spa_fallback(web_url: str) -> None:
    for path in ("/", "/console/token"):
        reply = await _get(web_url, path)
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/html")
        text = re.sub(r"<[^>]+>", "", reply.text)
        assert "Powered by Veloera" in " ".join(text.split())
        assert 'href="https://github.com/Veloera/Veloera"' in reply.text
    script = await _get(web_url, "/static/js/api.js")
    assert script.status_code == 200
    assert "Veloera-User" in script.text


async def test_unknown_api_path_is_openai_style_404(web_url: str) -> None:
    reply = await _get(web_url, "/api/does-not-exist")
    assert reply.status_code == 404
    assert reply.json() == {
        "error": {
            "message": "Invalid URL (GET /api/does-not-exist)",
            "type": "invalid_request_error",
        }
    }


async def test_health_endpoints(web_url: str) -> None:
    assert (await _get(web_url, "/healthz")).status_code == 200
    assert (await _get(web_url, "/readyz")).status_code == 200
    metrics = await _get(web_url, "/metrics")
    assert "veloera_web_http_requests_total" in metrics.text
