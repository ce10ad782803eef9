"""Bad input on the web API: oversized bodies are a 413, malformed values a 400 (or a 401 for
the Veloera-User header), each in the `{success, message}` envelope, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.helpers import Console, create_user, root_console, unique_name

pytestmark = pytest.mark.integration

HUGE = 2**70


def _refused(reply: httpx.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    body: dict[str, Any] = reply.json()
    assert body["success"] is False
    assert body["message"]
    return body


async def _raw(root: Console, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Veloera-User": str(root.user_id), **kwargs.pop("headers", {})}
    return await root.client.request(method, path, headers=headers, **kwargs)


async def test_an_oversized_login_body_is_refused_with_413(web_url: str) -> None:
    async with httpx.AsyncClient(base_url=web_url, timeout=30.0) as client:
        declared = await client.post(
            "/api/user/login", content=b'{"username": "' + b"a" * (2 * 1024 * 1024) + b'"}'
        )

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(64):
                yield b"x" * 1024

        chunked = await client.post("/api/user/login", content=chunks())
    assert "at most" in _refused(declared, 413)["message"]
    _refused(chunked, 413)


async def test_admin_routes_take_larger_bodies_than_login(
    web_url: str, saved_options: None
) -> None:
    root = await root_console(web_url)
    try:
        value = "x" * (200 * 1024)
        reply = await _raw(root, "PUT", "/api/option/", json={"key": "Footer", "value": value})
        assert reply.status_code == 200 and reply.json()["success"] is True
    finally:
        await root.aclose()


@pytest.mark.parametrize("claimed", ["²", str(HUGE), "-1", "1e3"])
async def test_a_malformed_veloera_user_header_is_401(web_url: str, claimed: str) -> None:
    root = await root_console(web_url)
    try:
        reply = await root.client.get(
            "/api/user/self", headers={b"Veloera-User": claimed.encode("latin-1")}
        )
        _refused(reply, 401)
    finally:
        await root.aclose()


async def test_out_of_range_ids_and_numbers_are_400(web_url: str) -> None:
    root = await root_console(web_url)
    try:
        cases: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", f"/api/user/{HUGE}", {}),
            ("DELETE", f"/api/token/{HUGE}", {}),
            ("GET", "/api/user/", {"params": {"p": str(HUGE)}}),
            ("GET", "/api/log/", {"params": {"start_timestamp": str(HUGE)}}),
            ("GET", "/api/log/", {"params": {"cursor": "9" * 20 + "." + "9" * 20}}),
            ("GET", "/api/log/self", {"params": {"cursor": "99999999999999999999.1"}}),
            ("PUT", "/api/user/", {"json": {"id": HUGE, "display_name": "x"}}),
            ("POST", "/api/token/", {"json": {"name": "k", "remain_quota": HUGE}}),
            ("POST", "/api/user/manage", {"json": {"id": 1e300, "action": "disable"}}),
            ("GET", "/api/channel/", {"params": {"page_size": "٣"}}),
        ]
        for method, path, kwargs in cases:
            reply = await _raw(root, method, path, **kwargs)
            assert reply.status_code == 400, (method, path, reply.text)
            assert reply.json()["success"] is False
    finally:
        await root.aclose()


async def test_nul_bytes_in_names_are_400(web_url: str) -> None:
    async with httpx.AsyncClient(base_url=web_url, timeout=10.0) as client:
        register = await client.post(
            "/api/user/register", json={"username": "ab\x00cd", "password": "password123"}
        )
        login = await client.post(
            "/api/user/login", json={"username": "ro\x00ot", "password": "password123"}
        )
    _refused(register, 400)
    _refused(login, 400)
    root = await root_console(web_url)
    try:
        search = await _raw(root, "GET", "/api/user/search", params={"keyword": "a\x00"})
        _refused(search, 400)
    finally:
        await root.aclose()


async def test_admin_quota_edits_are_bounded(web_url: str) -> None:
    root = await root_console(web_url)
    user, user_id = await create_user(root, quota=10)
    try:
        too_big = await _raw(
            root,
            "PUT",
            "/api/user/",
            json={"id": user_id, "quota": 2**53 + 1, "original_quota": 10},
        )
        assert "quota" in _refused(too_big, 400)["message"]
        await root.call("PUT", "/api/user/", json={"id": user_id, "quota_delta": 2**53 - 10})
        overflow = await _raw(root, "PUT", "/api/user/", json={"id": user_id, "quota_delta": 2**53})
        _refused(overflow, 400)
        again = await _raw(root, "PUT", "/api/user/", json={"id": user_id, "quota_delta": 1})
        _refused(again, 400)
        shown = await root.call("GET", f"/api/user/{user_id}")
        assert shown["quota"] == 2**53
    finally:
        await user.aclose()
        await root.aclose()


async def test_a_token_whose_budget_is_refused_leaves_nothing_behind(web_url: str) -> None:
    root = await root_console(web_url)
    user, _ = await create_user(root, quota=10)
    try:
        name = unique_name("k")
        reply = await _raw(
            user, "POST", "/api/token/", json={"name": name, "remain_quota": 2**63 - 1}
        )
        _refused(reply, 400)
        listed = await user.call("GET", "/api/token/", params={"p": 1, "page_size": 100})
        assert all(item["name"] != name for item in listed["items"])
    finally:
        await user.aclose()
        await root.aclose()


@pytest.mark.parametrize("keyword", [str(HUGE), "²", "9" * 19])
async def test_searching_codes_or_channels_by_an_odd_number_finds_nothing(
    web_url: str, keyword: str
) -> None:
    """A code keyword that looks like an id but is not one (beyond int64, a superscript digit)
    and channel filters of the same kind match nothing instead of failing (the fuzz suite found
    a billing traceback for the first)."""
    root = await root_console(web_url)
    try:
        for path, params in (
            ("/api/redemption/search", {"keyword": keyword}),
            ("/api/channel/", {"types": keyword, "statuses": keyword}),
        ):
            reply = await _raw(root, "GET", path, params=params)
            assert reply.status_code == 200, (path, reply.text)
            assert reply.json()["success"] is True, (path, reply.text)
    finally:
        await root.aclose()
