"""The admin user edit through the web service: a quota saved from a stale form is refused,
a fresh one is applied exactly, and quota_delta adds or subtracts without going below zero."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from veloera.billing.v1 import billing_pb2

from tests.support.clients import BillingClient
from tests.support.helpers import Console, admin_channel, create_user, root_console

pytestmark = pytest.mark.integration


@pytest.fixture
async def root(web_url: str) -> AsyncIterator[Console]:
    console = await root_console(web_url)
    try:
        yield console
    finally:
        await console.aclose()


async def spend(billing_addr: str, user_id: int, amount: int) -> None:
    """What traffic does to a balance, without a relay in the way."""
    channel = admin_channel(billing_addr)
    try:
        await BillingClient(channel).AdjustQuota(
            billing_pb2.AdjustQuotaRequest(
                idempotency_key=f"test-spend:{uuid.uuid4()}",
                user_id=user_id,
                delta=-amount,
                kind="grant",
            ),
            timeout=10,
        )
    finally:
        await channel.close()


async def balance(root: Console, user_id: int) -> int:
    return int((await root.call("GET", f"/api/user/{user_id}"))["quota"])


async def test_a_form_saved_after_traffic_does_not_give_spent_quota_back(
    root: Console, billing_addr: str
) -> None:
    user, user_id = await create_user(root, quota=10_000)
    await user.aclose()
    form = await root.call("GET", f"/api/user/{user_id}")  # the admin opens the edit form
    await spend(billing_addr, user_id, 4_000)
    form.update(quota=20_000, original_quota=form["quota"], display_name="renamed")
    stale = await root.envelope("PUT", "/api/user/", json=form)
    assert stale["success"] is False and stale["data"] is None
    assert "changed since the form was loaded" in stale["message"]
    assert "reload" in stale["message"]
    after = await root.call("GET", f"/api/user/{user_id}")
    assert (after["quota"], after["display_name"]) == (6_000, form["username"])
    reloaded = await root.call("GET", f"/api/user/{user_id}")
    reloaded.update(quota=20_000, original_quota=reloaded["quota"])
    saved = await root.call("PUT", "/api/user/", json=reloaded)
    assert saved["quota"] == 20_000
    assert await balance(root, user_id) == 20_000


async def test_quota_without_its_base_is_refused_unless_unchanged(
    root: Console, billing_addr: str
) -> None:
    user, user_id = await create_user(root, quota=10_000)
    await user.aclose()
    form = await root.call("GET", f"/api/user/{user_id}")
    await spend(billing_addr, user_id, 1_000)
    blind = await root.envelope("PUT", "/api/user/", json={"id": user_id, "quota": 10_000})
    assert blind["success"] is False
    assert "original_quota" in blind["message"] and "quota_delta" in blind["message"]
    assert await balance(root, user_id) == 9_000
    # The same value as now is no change, so a new-api form that left quota alone still saves.
    same = {"id": user_id, "quota": 9_000, "display_name": "kept"}
    assert (await root.call("PUT", "/api/user/", json=same))["display_name"] == "kept"
    # A stale form whose quota field was left as loaded saves its other fields only.
    form.update(original_quota=form["quota"], display_name="other")
    assert (await root.call("PUT", "/api/user/", json=form))["quota"] == 9_000


async def test_quota_delta_adds_and_subtracts_exactly(root: Console, billing_addr: str) -> None:
    user, user_id = await create_user(root, quota=10_000)
    await user.aclose()
    added = await root.call("PUT", "/api/user/", json={"id": user_id, "quota_delta": 2_500})
    assert added["quota"] == 12_500
    await spend(billing_addr, user_id, 500)  # a delta needs no base: traffic cannot undo it
    taken = await root.call("PUT", "/api/user/", json={"id": user_id, "quota_delta": -7_000})
    assert taken["quota"] == 5_000
    both = await root.envelope(
        "PUT",
        "/api/user/",
        json={"id": user_id, "quota": 1, "original_quota": 5_000, "quota_delta": 10},
    )
    assert both["success"] is False and "not both" in both["message"]
    assert await balance(root, user_id) == 5_000


async def test_subtracting_below_zero_is_refused_clearly(root: Console) -> None:
    user, user_id = await create_user(root, quota=3_000)
    await user.aclose()
    refused = await root.envelope("PUT", "/api/user/", json={"id": user_id, "quota_delta": -3_001})
    assert refused["success"] is False
    assert "below zero" in refused["message"] and "3000" in refused["message"]
    assert await balance(root, user_id) == 3_000
    emptied = await root.call("PUT", "/api/user/", json={"id": user_id, "quota_delta": -3_000})
    assert emptied["quota"] == 0
