"""The accounts domain through the console API (`/api/*`): options, users, keys, channels, inbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.support.helpers import (
    Console,
    create_token,
    create_user,
    login,
    root_console,
    unique_name,
)

pytestmark = pytest.mark.integration

PASSWORD = "password123"


@pytest_asyncio.fixture(loop_scope="session")
async def root(web_url: str) -> AsyncIterator[Console]:
    console = await root_console(web_url)
    yield console
    await console.aclose()


async def _options(root: Console) -> dict[str, str]:
    return {item["key"]: item["value"] for item in await root.call("GET", "/api/option/")}


async def _set(root: Console, key: str, value: Any) -> dict[str, Any]:
    return await root.envelope("PUT", "/api/option/", json={"key": key, "value": value})


async def _refused(console: Console, method: str, path: str, **kwargs: Any) -> str:
    body = await console.envelope(method, path, **kwargs)
    assert body["success"] is False, body
    message: str = body["message"]
    assert message
    return message


# ---------------------------------------------------------------- options


async def test_bad_options_get_clear_errors_and_change_nothing(root: Console) -> None:
    before = await _options(root)
    cases = [
        ("NoSuchOption", "1", "unknown option"),
        ("RetryTimes", "three", "integer"),
        ("RetryTimes", "-1", "at least"),
        ("DrawingEnabled", "maybe", "true or false"),
        ("TopupGroupRatio", "[1, 2]", "JSON object"),
        ("Chats", '{"a": 1}', "JSON list"),
        ("ReverseProxyProvider", "apache", "nginx"),
        ("global_model_mapping", '{"mapping": []}', "mapping"),
        ("global_model_mapping", '{"mapping": {"v": [{"priorities": 1}]}}', "model"),
        ("GitHubOAuthEnabled", "true", "GitHubClientId"),
    ]
    for key, value, expected in cases:
        assert expected in await _refused(
            root, "PUT", "/api/option/", json={"key": key, "value": value}
        )
    assert await _options(root) == before


async def test_oauth_toggle_needs_credentials_and_secrets_stay_hidden(
    root: Console, saved_options: None
) -> None:
    client_id = f"id-{uuid.uuid4().hex[:6]}"
    assert (await _set(root, "GitHubClientSecret", ""))["success"]  # another test may set one
    assert (await _set(root, "GitHubClientId", client_id))["success"]
    assert not (await _set(root, "GitHubOAuthEnabled", True))["success"]
    assert (await _set(root, "GitHubClientSecret", "gh-secret-1"))["success"]
    assert (await _set(root, "GitHubOAuthEnabled", True))["success"]
    options = await _options(root)
    assert options["GitHubOAuthEnabled"] == "true" and options["GitHubClientId"] == client_id
    assert "GitHubClientSecret" not in options and "SMTPToken" not in options
    audit = await root.call("GET", "/api/option/audit", params={"key": "GitHubClientSecret"})
    assert audit["items"][0]["new_value"] == "***"


async def test_email_domain_restriction_requires_a_whitelist(
    root: Console, saved_options: None
) -> None:
    assert (await _set(root, "EmailDomainWhitelist", " , "))["success"]
    message = await _refused(
        root, "PUT", "/api/option/", json={"key": "EmailDomainRestrictionEnabled", "value": 1}
    )
    assert "EmailDomainWhitelist" in message
    assert (await _set(root, "EmailDomainWhitelist", "example.com,\nexample.org"))["success"]
    assert (await _options(root))["EmailDomainWhitelist"] == "example.com,example.org"


async def test_global_model_mapping_round_trip(root: Console) -> None:
    virtual = f"smart-{uuid.uuid4().hex[:6]}"
    config = {"mapping": {virtual: [{"model": "gpt-4o", "priorities": 2}, {"model": "m2"}]}}
    saved = await root.call("PUT", "/api/model_mapping/", json=config)
    assert saved["mapping"][virtual][0] == {"model": "gpt-4o", "priorities": 2}
    bad = {"mapping": {virtual: "gpt-4o"}}
    assert "non-empty list" in await _refused(root, "PUT", "/api/model_mapping/", json=bad)
    assert (await root.call("GET", "/api/model_mapping/"))["mapping"] == config["mapping"]
    options = await _options(root)
    assert json.loads(options["global_model_mapping"]) == config


# ---------------------------------------------------------------- registration and self service


async def _register(web_url: str, **body: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=web_url, timeout=10.0) as client:
        reply: dict[str, Any] = (await client.post("/api/user/register", json=body)).json()
        return reply


async def test_register_then_login_with_invite_code(web_url: str, root: Console) -> None:
    inviter, inviter_id = await create_user(root, quota=0)
    try:
        code = await inviter.call("GET", "/api/user/aff")
        username = unique_name("r")
        reply = await _register(web_url, username=username, password=PASSWORD, aff_code=code)
        assert reply["success"], reply
        invitee = await login(web_url, username, PASSWORD)
        me = await invitee.call("GET", "/api/user/self")
        assert me["inviter_id"] == inviter_id
        assert (await inviter.call("GET", "/api/user/self"))["aff_count"] == 1
        await invitee.aclose()
        too_long = await _register(web_url, username="x" * 13, password=PASSWORD)
        assert too_long["success"] is False and "username" in too_long["message"]
        mismatch = await _register(
            web_url, username=unique_name("r"), password=PASSWORD, password2="other-pass"
        )
        assert mismatch["success"] is False
    finally:
        await inviter.aclose()


async def test_register_closed_by_the_admin(
    web_url: str, root: Console, saved_options: None
) -> None:
    assert (await _set(root, "RegisterEnabled", False))["success"]
    reply = await _register(web_url, username=unique_name("r"), password=PASSWORD)
    assert reply["success"] is False and "closed" in reply["message"]


async def test_profile_update_needs_the_current_password(web_url: str, root: Console) -> None:
    user, _ = await create_user(root, quota=0)
    try:
        await user.call("PUT", "/api/user/self", json={"display_name": "Neo"})
        wrong = {"password": "newpass-123", "original_password": "not-mine-1"}
        assert "current password" in await _refused(user, "PUT", "/api/user/self", json=wrong)
        missing = {"password": "newpass-123"}
        assert await _refused(user, "PUT", "/api/user/self", json=missing)
        right = {"password": "newpass-123", "original_password": PASSWORD}
        await user.call("PUT", "/api/user/self", json=right)
        me = await user.call("GET", "/api/user/self")
        again = await login(web_url, me["username"], "newpass-123")
        assert (await again.call("GET", "/api/user/self"))["display_name"] == "Neo"
        await again.aclose()
    finally:
        await user.aclose()


async def test_self_delete_ends_the_session(root: Console) -> None:
    user, user_id = await create_user(root, quota=0)
    try:
        await user.call("DELETE", "/api/user/self")
        body = await user.envelope("GET", "/api/user/self")
        assert body["success"] is False
        found = await root.call("GET", "/api/user/search", params={"keyword": str(user_id)})
        assert all(item["id"] != user_id for item in found["items"])
    finally:
        await user.aclose()


async def test_user_settings_are_validated(root: Console) -> None:
    user, _ = await create_user(root, quota=0)
    try:
        good = {
            "notify_type": "webhook",
            "webhook_url": "https://hooks.example.com/x",
            "webhook_secret": "s3",
            "quota_warning_threshold": 5000,
            "show_ip_in_logs": True,
        }
        saved = await user.call("PUT", "/api/user/setting", json=good)
        assert saved["notify_type"] == "webhook" and saved["webhook_secret"] == "***"
        bad_bodies = [
            {"webhook_url": "ftp://hooks.example.com"},
            {"notify_type": "sms"},
            {"quota_warning_threshold": -1},
            {"show_ip_in_logs": "yes"},
            {"favourite_colour": "blue"},
        ]
        for body in bad_bodies:
            await _refused(user, "PUT", "/api/user/setting", json=body)
        me = await user.call("GET", "/api/user/self")
        stored = json.loads(me["setting"])
        assert stored["webhook_url"] == "https://hooks.example.com/x"
        assert stored["quota_warning_threshold"] == 5000 and stored["show_ip_in_logs"] is True
    finally:
        await user.aclose()


async def test_groups_and_admin_filters(web_url: str, root: Console) -> None:
    async with httpx.AsyncClient(base_url=web_url, timeout=10.0) as client:
        public = (await client.get("/api/user/groups")).json()["data"]
    assert public["default"]["ratio"] == 1 and "desc" in public["default"]
    user, user_id = await create_user(root, quota=0, group="vip")
    try:
        own = await user.call("GET", "/api/user/self/groups")
        assert "vip" in own and "default" in own
        admins = await root.call("GET", "/api/user/search", params={"role": 10, "keyword": ""})
        assert all(item["role"] == 10 for item in admins["items"])
        await root.call("POST", "/api/user/manage", json={"id": user_id, "action": "disable"})
        disabled = await root.call("GET", "/api/user/", params={"status": 2, "page_size": 100})
        assert user_id in [item["id"] for item in disabled["items"]]
        body = await user.envelope("GET", "/api/user/self")
        assert body["success"] is False
    finally:
        await user.aclose()


async def test_sessions_can_be_listed_and_revoked(web_url: str, root: Console) -> None:
    user, _ = await create_user(root, quota=0)
    me = await user.call("GET", "/api/user/self")
    second = await login(web_url, me["username"], PASSWORD)
    try:
        sessions = await second.call("GET", "/api/user/sessions")
        assert len(sessions) == 2 and sessions[0]["current"] and not sessions[1]["current"]
        await second.call("DELETE", f"/api/user/sessions/{sessions[1]['id']}")
        assert (await user.envelope("GET", "/api/user/self"))["success"] is False
        assert (await second.call("GET", "/api/user/self"))["id"] == me["id"]
    finally:
        await user.aclose()
        await second.aclose()


# ---------------------------------------------------------------- API keys


async def test_token_fields_group_search_and_batch_delete(root: Console) -> None:
    user, _ = await create_user(root, quota=0)
    try:
        marker = uuid.uuid4().hex[:6]
        token = await create_token(
            user,
            name=f"svc-{marker}",
            group="vip",
            allow_ips="10.0.0.0/8\n2001:db8::/32,192.168.1.7",
            rate_limit_enabled=True,
            rate_limit_period=30,
            rate_limit_count=7,
            rate_limit_success=3,
        )
        assert token["allow_ips"] == "10.0.0.0/8\n2001:db8::/32\n192.168.1.7"
        assert (token["rate_limit_period"], token["rate_limit_count"]) == (30, 7)
        assert token["rate_limit_success"] == 3 and token["group"] == "vip"
        other = await create_token(user, name=f"svc2-{marker}")
        for bad in (
            {"group": "secret-group"},
            {"allow_ips": "10.0.0.0/33"},
            {"name": "n" * 31},
        ):
            await _refused(user, "POST", "/api/token/", json={"name": "x", **bad})
        found = await user.call("GET", "/api/token/search", params={"keyword": marker})
        assert {item["id"] for item in found["items"]} == {token["id"], other["id"]}
        stranger, _ = await create_user(root, quota=0)
        try:
            theirs = await stranger.call(
                "POST", "/api/token/batch", json={"ids": [token["id"], other["id"]]}
            )
            assert theirs == 0
        finally:
            await stranger.aclose()
        deleted = await user.call("POST", "/api/token/batch", json={"ids": [token["id"]]})
        assert deleted == 1
        left = await user.call("GET", "/api/token/search", params={"keyword": marker})
        assert [item["id"] for item in left["items"]] == [other["id"]]
        assert other["remain_quota"] == 0 and left["items"][0]["unlimited_quota"] is True
    finally:
        await user.aclose()


# ---------------------------------------------------------------- channels


def _channel(**fields: Any) -> dict[str, Any]:
    return {
        "type": 1,
        "name": unique_name("ch"),
        "key": "sk-aaaa-1111,sk-bbbb-2222",
        "models": "m-one,m-two",
        "group": "default",
        **fields,
    }


async def test_channel_bad_inputs_are_refused(root: Console) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": 21}, "not supported"),
        ({"type": 999}, "unknown channel type"),
        ({"setting": '{"proxy": "ftp://x"}'}, "proxy"),
        ({"setting": '{"stream_support": "maybe"}'}, "stream_support"),
        ({"model_mapping": '{"a": 1}'}, "model_mapping"),
        ({"status_code_mapping": '{"400": "abc"}'}, "status_code_mapping"),
        ({"status_code_mapping": '{"\u00b2": "500"}'}, "status_code_mapping"),  # '²'.isdigit()
        ({"type": 11}, "not supported yet"),
        ({"type": 41, "other": "us-central1"}, "Vertex AI regions"),
        ({"base_url": "gopher://x"}, "base_url"),
    ]
    name = unique_name("bad")
    for fields, expected in cases:
        message = await _refused(root, "POST", "/api/channel/", json=_channel(name=name, **fields))
        assert expected in message, message
    found = await root.call("GET", "/api/channel/search", params={"keyword": name})
    assert found["total"] == 0


async def test_channel_keys_masked_revealed_by_root_only(root: Console) -> None:
    created = await root.call("POST", "/api/channel/", json=_channel())
    full = await root.call("GET", f"/api/channel/{created['id']}")
    assert "sk-aaaa-1111" not in full["key"] and len(full["keys"]) == 2
    revealed = await root.call("GET", f"/api/channel/{created['id']}/key")
    assert revealed["key"] == "sk-aaaa-1111\nsk-bbbb-2222"
    admin, _ = await create_user(root, quota=0, role=10)
    try:
        await _refused(admin, "GET", f"/api/channel/{created['id']}/key")
        assert (await admin.call("GET", f"/api/channel/{created['id']}"))["id"] == created["id"]
        # Nor can an admin have the keys sent to an address of their choosing.
        moved = {"id": created["id"], "base_url": "https://collector.example"}
        message = await _refused(admin, "PUT", "/api/channel/", json=moved)
        assert "entering its keys again" in message
        typed = {**moved, "key": "sk-admin-typed"}
        assert (await admin.call("PUT", "/api/channel/", json=typed))["id"] == created["id"]
    finally:
        await admin.aclose()


async def test_channel_tags_bulk_edit_fix_and_batch_delete(root: Console) -> None:
    tag = f"tag-{uuid.uuid4().hex[:6]}"
    ids = [(await root.call("POST", "/api/channel/", json=_channel()))["id"] for _ in range(2)]
    assert await root.call("POST", "/api/channel/batch/tag", json={"ids": ids, "tag": tag}) == 2
    assert tag in await root.call("GET", "/api/channel/tags")
    edit = {"tag": tag, "priority": 7, "weight": 4, "models": "m-three", "groups": "vip"}
    assert await root.call("PUT", "/api/channel/tag", json=edit) == 2
    listed = await root.call("GET", "/api/channel/search", params={"tags": tag})
    assert {(c["priority"], c["weight"], c["models"], c["group"]) for c in listed["items"]} == {
        (7, 4, "m-three", "vip")
    }
    bad = {"tag": tag, "model_mapping": "[1]"}
    assert "model_mapping" in await _refused(root, "PUT", "/api/channel/tag", json=bad)
    assert await root.call("POST", "/api/channel/tag/disabled", json={"tag": tag}) == 2
    off = await root.call("GET", "/api/channel/search", params={"tags": tag, "statuses": "2"})
    assert off["total"] == 2
    assert await root.call("POST", "/api/channel/tag/enabled", json={"tag": tag}) == 2
    by_model = await root.call("GET", "/api/channel/search", params={"model": "m-three",
                                                                    "group": "vip"})  # fmt: skip
    assert set(ids) <= {c["id"] for c in by_model["items"]}
    assert await root.call("POST", "/api/channel/fix") >= 2
    assert await root.call("POST", "/api/channel/batch", json={"ids": ids}) == 2
    assert (await root.call("GET", "/api/channel/search", params={"tags": tag}))["total"] == 0


# ---------------------------------------------------------------- inbox


async def test_inbox_through_the_console(root: Console) -> None:
    alice, alice_id = await create_user(root, quota=0)
    bob, _ = await create_user(root, quota=0)
    try:
        title = f"Hello {uuid.uuid4().hex[:6]}"
        body = {"title": title, "content": "# Welcome", "user_ids": [alice_id]}
        sent = await root.call("POST", "/api/admin/messages/", json=body)
        assert await alice.call("GET", "/api/user/messages/unread_count") == 1
        mine = await alice.call("GET", "/api/user/messages/")
        assert mine["items"][0]["title"] == title and mine["items"][0]["read"] is False
        assert await bob.call("GET", "/api/user/messages/unread_count") == 0
        await _refused(bob, "POST", "/api/admin/messages/", json=body)
        await _refused(bob, "PUT", f"/api/user/messages/{sent['id']}/read")
        read = await alice.call("PUT", f"/api/user/messages/{sent['id']}/read")
        assert read == {"unread": 0}
        edited = await root.call(
            "PUT", f"/api/admin/messages/{sent['id']}", json={**body, "title": "Edited"}
        )
        assert edited["title"] == "Edited"
        await root.call("DELETE", f"/api/admin/messages/{sent['id']}")
        assert (await alice.call("GET", "/api/user/messages/"))["total"] == 0
    finally:
        await alice.aclose()
        await bob.aclose()


async def test_registration_pays_the_signup_and_invite_rewards(
    web_url: str, root: Console, saved_options: None
) -> None:
    rewards = {"QuotaForNewUser": 1234, "QuotaForInvitee": 100, "QuotaForInviter": 50}
    for key, value in rewards.items():
        await root.call("PUT", "/api/option/", json={"key": key, "value": str(value)})
    inviter, _ = await create_user(root, quota=0)
    try:
        code = await inviter.call("GET", "/api/user/aff")
        username = unique_name("r")
        reply = await _register(web_url, username=username, password=PASSWORD, aff_code=code)
        assert reply["success"], reply
        invitee = await login(web_url, username, PASSWORD)
        assert (await invitee.call("GET", "/api/user/self"))["quota"] == 1234 + 100
        await invitee.aclose()
        me = await inviter.call("GET", "/api/user/self")
        assert me["quota"] == 0
        assert me["aff_quota"] == 50
    finally:
        await inviter.aclose()
