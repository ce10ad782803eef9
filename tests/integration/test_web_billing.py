"""The console's billing endpoints through the web service, and the relay's OpenAI-style
billing endpoints: pricing page, log stats, usage data, redemption codes, check-in."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from veloera.billing.v1 import billing_pb2

from tests.support.clients import BillingClient
from tests.support.helpers import (
    admin_channel,
    create_channel,
    create_token,
    create_user,
    root_console,
    unique_name,
)

pytestmark = pytest.mark.integration


async def test_pricing_page_lists_models_groups_can_use(web_url: str) -> None:
    root = await root_console(web_url)
    try:
        await create_channel(root, base_url="http://127.0.0.1:9", models=["gpt-4o", "dall-e-3"])
        async with httpx.AsyncClient(base_url=web_url, timeout=10) as guest:
            body = (await guest.get("/api/pricing")).json()
        assert body["success"] and body["group_ratio"]["default"] == 1
        assert "default" in body["usable_group"]
        by_name = {item["model_name"]: item for item in body["data"]}
        gpt = by_name["gpt-4o"]
        assert (gpt["quota_type"], gpt["model_ratio"], gpt["completion_ratio"]) == (0, 1.25, 4)
        assert gpt["input_price_per_million"] == 2.5 and gpt["output_price_per_million"] == 10
        assert "default" in gpt["enable_groups"]
        assert (by_name["dall-e-3"]["quota_type"], by_name["dall-e-3"]["model_price"]) == (1, 0.04)
    finally:
        await root.aclose()


async def test_redemption_codes_through_the_console(web_url: str) -> None:
    root = await root_console(web_url)
    user, _ = await create_user(root, quota=0)
    try:
        name = unique_name("rc")
        keys = await root.call(
            "POST", "/api/redemption/", json={"name": name, "quota": 12_345, "count": 2}
        )
        assert len(keys) == 2
        listed = await root.call("GET", f"/api/redemption/search?keyword={name}")
        assert listed["total"] == 2
        forbidden = await user.envelope("GET", "/api/redemption/")
        assert not forbidden["success"]
        assert await user.call("POST", "/api/user/topup", json={"key": keys[0]}) == 12_345
        again = await user.envelope("POST", "/api/user/topup", json={"key": keys[0]})
        assert not again["success"] and "used" in again["message"]
        empty = await user.envelope("POST", "/api/user/topup", json={"key": ""})
        assert not empty["success"]
        negative = await root.envelope(
            "POST", "/api/redemption/", json={"name": name, "quota": -1, "count": 1}
        )
        assert not negative["success"] and "quota" in negative["message"]
        me = await user.call("GET", "/api/user/self")
        assert me["quota"] == 12_345
        logs = await user.call("GET", "/api/log/self?type=1")
        assert logs["total"] == 1
    finally:
        await user.aclose()
        await root.aclose()


async def test_codes_counted_disabled_and_deleted_in_batches(web_url: str) -> None:
    root = await root_console(web_url)
    user, _ = await create_user(root, quota=0)
    try:
        name, other = unique_name("rb"), unique_name("rb")
        keys = await root.call(
            "POST", "/api/redemption/", json={"name": name, "quota": 5, "count": 3}
        )
        await root.call("POST", "/api/redemption/", json={"name": other, "quota": 5, "count": 1})
        assert await root.call("GET", "/api/redemption/count-by-name", params={"name": name}) == 3
        # the prefix search would also find `name` + more; the count is of exactly this name
        assert (
            await root.call("GET", "/api/redemption/count-by-name", params={"name": name[:-1]}) == 0
        )
        listed = await root.call("GET", "/api/redemption/search", params={"keyword": name})
        ids = sorted(item["id"] for item in listed["items"])
        assert await user.call("POST", "/api/user/topup", json={"key": keys[0]}) == 5
        # used codes stay used: two of the three change
        assert await root.call("POST", "/api/redemption/batch-disable", json={"ids": ids}) == 2
        refused = await user.envelope("POST", "/api/user/topup", json={"key": keys[1]})
        assert not refused["success"]
        bad_bodies: list[dict[str, object]] = [
            {"ids": "1,2"},
            {"ids": ["x"]},
            {"ids": []},
            {"ids": list(range(1, 102))},
        ]
        for bad in bad_bodies:
            reply = await root.client.post(
                "/api/redemption/batch-disable",
                json=bad,
                headers={"Veloera-User": str(root.user_id)},
            )
            assert reply.status_code in (200, 400), reply.text  # refused, never a 500
            assert not reply.json()["success"] and reply.json()["message"], bad
        assert not (
            await user.envelope("POST", "/api/redemption/batch-disable", json={"ids": ids})
        )["success"]
        assert (
            await root.call("DELETE", "/api/redemption/delete-by-name", params={"name": name}) == 3
        )
        assert await root.call("GET", "/api/redemption/count-by-name", params={"name": name}) == 0
        assert await root.call("GET", "/api/redemption/count-by-name", params={"name": other}) == 1
        missing = await root.envelope("DELETE", "/api/redemption/delete-by-name")
        assert not missing["success"] and "name" in missing["message"]
        await root.call("POST", "/api/redemption/delete-by-name", json={"name": other})
        assert await root.call("GET", "/api/redemption/count-by-name", params={"name": other}) == 0
    finally:
        await user.aclose()
        await root.aclose()


async def test_delete_disabled_takes_only_disabled_codes(web_url: str) -> None:
    root = await root_console(web_url)
    try:
        name = unique_name("rd")
        await root.call("POST", "/api/redemption/", json={"name": name, "quota": 5, "count": 2})
        listed = await root.call("GET", "/api/redemption/search", params={"keyword": name})
        first = min(item["id"] for item in listed["items"])
        await root.call("POST", "/api/redemption/batch-disable", json={"ids": [first]})
        assert await root.call("DELETE", "/api/redemption/delete-disabled") >= 1
        left = await root.call("GET", "/api/redemption/search", params={"keyword": name})
        assert [item["status"] for item in left["items"]] == [1]
    finally:
        await root.aclose()


async def test_check_in_through_the_console(web_url: str, billing_addr: str) -> None:
    root = await root_console(web_url)
    user, _ = await create_user(root, quota=0)
    # Set in billing directly: PUT /api/option/ routes only PRICING_OPTION_KEYS to billing.
    channel = admin_channel(billing_addr)
    try:
        await BillingClient(channel).UpdatePricingOption(
            billing_pb2.UpdatePricingOptionRequest(key="CheckInEnabled", value="true"), timeout=10
        )
    finally:
        await channel.close()
    try:
        status = await user.call("GET", "/api/user/check_in_status")
        assert status["enabled"] and status["can_check_in"]
        reward = await user.call("POST", "/api/user/check_in")
        assert reward["quota"] > 0
        twice = await user.envelope("POST", "/api/user/check_in")
        assert not twice["success"] and "already" in twice["message"]
        assert not (await user.call("GET", "/api/user/check_in_status"))["can_check_in"]
    finally:
        await user.aclose()
        await root.aclose()


async def _serve_one(relay_url: str, key: str, model: str) -> None:
    async with httpx.AsyncClient(base_url=relay_url, timeout=30) as client:
        reply = await client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert reply.status_code == 200, reply.text


async def test_log_stats_usage_data_and_dashboard_billing(
    web_url: str, relay_url: str, fake_openai: Any
) -> None:
    root = await root_console(web_url)
    user, user_id = await create_user(root, quota=5_000_000)
    try:
        model = "gpt-4o-mini"
        await create_channel(root, base_url=fake_openai.url, models=[model])
        token = await create_token(user, unlimited_quota=False, remain_quota=1_000_000)
        key = token["key"]
        await _serve_one(relay_url, key, model)
        await _serve_one(relay_url, key, model)
        start = int(time.time()) - 600

        async def stat_now() -> dict[str, Any]:
            result: dict[str, Any] = await user.call(
                "GET", f"/api/log/self/stat?start_timestamp={start}"
            )
            return result

        stat = await stat_now()
        for _ in range(50):  # settlement runs after the response is sent
            if stat["count"] >= 2:
                break
            await asyncio.sleep(0.1)
            stat = await stat_now()
        assert stat["count"] == 2 and stat["quota"] > 0
        assert stat["rpm"] == pytest.approx(2 * 60 / stat["window_seconds"], abs=1e-3)
        admin_stat = await root.call(
            "GET",
            f"/api/log/stat?username={(await user.call('GET', '/api/user/self'))['username']}",
        )
        assert admin_stat["quota"] == stat["quota"]
        page = await user.call("GET", "/api/log/self?page_size=1&skip_total=1")
        assert len(page["items"]) == 1 and page["next_cursor"]
        nxt = await user.call("GET", f"/api/log/self?page_size=1&cursor={page['next_cursor']}")
        assert nxt["items"][0]["id"] < page["items"][0]["id"]
        data = await user.call("GET", f"/api/data/self?start_timestamp={start}")
        assert [(d["model_name"], d["count"]) for d in data] == [(model, 2)]
        assert data[0]["quota"] == stat["quota"]
        admin_data = await root.call("GET", f"/api/data/?start_timestamp={start}")
        assert any(d["user_id"] == user_id for d in admin_data)
        async with httpx.AsyncClient(base_url=relay_url, timeout=10) as client:
            headers = {"Authorization": f"Bearer {key}"}
            sub = (await client.get("/v1/dashboard/billing/subscription", headers=headers)).json()
            usage = (await client.get("/dashboard/billing/usage", headers=headers)).json()
            denied = await client.get("/dashboard/billing/usage")
        assert sub["object"] == "billing_subscription"
        assert sub["hard_limit_usd"] == pytest.approx(1_000_000 / 500_000)
        assert usage["total_usage"] == pytest.approx(stat["quota"] / 500_000 * 100)
        assert denied.status_code == 401
        bad = await root.envelope("DELETE", "/api/log/")
        assert not bad["success"]
    finally:
        await user.aclose()
        await root.aclose()
