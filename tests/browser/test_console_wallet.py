"""Money in by clicking: codes an admin creates in bulk are redeemed in the wallet, and an
EPay top-up posts a signed order to the gateway and is credited on its notify call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

import httpx
import pytest
from playwright.async_api import Route, expect

from tests.fakes.epay import FakeEpay
from tests.support.browser import Site, Tab, TabFactory, sign_in, sign_in_root
from tests.support.helpers import unique_name
from tests.support.world import eventually

pytestmark = pytest.mark.browser

GATEWAY = "http://pay.invalid"
EPAY = FakeEpay(pid="2002", key="browser-merchant-key")
QUOTA_PER_DOLLAR = 500_000


async def _create_codes(tab: Tab, name: str, count: int) -> list[str]:
    await tab.open("/console/redemption")
    await tab.page.get_by_role("button", name="Create codes").first.click()
    dialog = tab.page.locator("dialog[open]")
    await dialog.locator("#f-name").fill(name)
    await dialog.locator("#f-quota").fill(str(QUOTA_PER_DOLLAR))
    await dialog.locator("#f-count").fill(str(count))
    await dialog.locator("button[type=submit]").click()
    shown = tab.page.locator("dialog[open] textarea")
    await expect(shown).to_be_visible()
    codes = (await shown.input_value()).split("\n")
    await tab.page.locator("dialog[open]").get_by_role("button", name="Close").click()
    await expect(tab.page.locator("#view tbody tr", has_text=name)).to_have_count(count)
    return codes


async def _redeem(tab: Tab, code: str) -> None:
    await tab.page.fill("#f-key", code)
    await tab.page.get_by_role("button", name="Redeem").click()


async def test_codes_created_in_bulk_are_redeemed_in_the_wallet(
    open_tab: TabFactory, site: Site
) -> None:
    admin = await open_tab()
    await sign_in_root(admin)
    name = unique_name("c")
    first, second = await _create_codes(admin, name, 2)
    # The second code is disabled by clicking before anyone uses it.
    row = admin.page.locator("#view tbody tr", has_text=second[:8])
    await row.get_by_role("button", name="Disable").click()
    await expect(row).to_contain_text("Disabled")
    await row.get_by_role("button", name="Edit").click()
    await admin.page.locator("dialog[open] #f-name").fill(name + "x")
    await admin.page.locator("dialog[open] button[type=submit]").click()
    await expect(row.locator("td[data-label=Name]")).to_have_text(name + "x")

    user = await open_tab()
    await sign_in(user, site.username, site.password)
    await user.open("/console/topup")
    await expect(user.page.locator("#wallet-balance")).to_have_text("$10.00")
    await _redeem(user, first)
    await expect(user.page.locator("#wallet-balance")).to_have_text("$11.00")
    await _redeem(user, second)
    await expect(user.page.locator(".toast.error")).to_be_visible()
    await expect(user.page.locator("#wallet-balance")).to_have_text("$11.00")
    await user.open("/console/log")
    await expect(user.page.locator("#view tbody tr", has_text="Top-up")).to_have_count(1)
    admin.assert_clean()
    user.assert_clean()


@pytest.fixture
async def epay(site: Site) -> AsyncIterator[None]:
    values = {"PayAddress": GATEWAY, "EpayId": EPAY.pid, "EpayKey": EPAY.key, "Price": "7.3"}
    options = {o["key"]: o["value"] for o in await site.root.call("GET", "/api/option/")}
    for key, value in values.items():
        await site.root.call("PUT", "/api/option/", json={"key": key, "value": value})

    async def offered() -> bool | None:
        async with httpx.AsyncClient(base_url=site.web_url, timeout=10.0) as client:
            status = (await client.get("/api/status")).json()["data"]
        return True if status["enable_online_topup"] else None

    await eventually(offered)  # the web process caches options for a few seconds
    yield
    for key in values:
        previous = options.get(key, "" if key != "Price" else "7.3")
        await site.root.call("PUT", "/api/option/", json={"key": key, "value": previous})


async def test_epay_top_up_posts_a_signed_order_and_is_credited(
    open_tab: TabFactory, site: Site, epay: None
) -> None:
    user = await open_tab()
    orders: list[dict[str, str]] = []

    async def gateway(route: Route) -> None:
        orders.append(dict(parse_qsl(route.request.post_data or "")))
        await route.fulfill(status=200, content_type="text/html", body="<p>paying</p>")

    await user.page.route(GATEWAY + "/**", gateway)
    await sign_in(user, site.username, site.password)
    await user.open("/console/topup")
    await user.page.fill("#f-amount", "3")
    await user.page.press("#f-amount", "Tab")
    await expect(user.page.locator("#topup-price")).to_have_text("To pay: 21.90")
    await user.page.get_by_role("button", name="Pay").click()
    await expect(user.page.locator("body")).to_have_text("paying")
    [form] = orders
    assert EPAY.accepts(form) and form["money"] == "21.90"

    async with httpx.AsyncClient(base_url=site.web_url, timeout=10.0) as client:
        reply = await client.get("/api/user/epay/notify", params=EPAY.notify(form))
    assert reply.text == "success"
    await user.open("/console/topup")
    await expect(user.page.locator("#wallet-balance")).to_have_text("$13.00")
    user.assert_clean()
