"""The console's main flow by clicking, in headless chromium: setup, add a channel, create a
key with limits, chat in the playground (streamed through the relay), then see the log row
and the balance change."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import httpx
import pytest
from playwright.async_api import expect

from tests.support.browser import Site, Tab, TabFactory, sign_in, sign_in_root
from tests.support.helpers import ROOT_PASSWORD, ROOT_USERNAME, unique_name
from tests.support.world import eventually, wait_for_model

pytestmark = pytest.mark.browser

KEY_QUOTA = 1_000_000


async def _setup_by_clicking(tab: Tab, web_url: str) -> None:
    """The wizard when the system is new; otherwise the wizard says it is already set up."""
    async with httpx.AsyncClient(base_url=web_url, timeout=10.0) as client:
        initialized = (await client.get("/api/setup")).json()["data"]["status"]
    await tab.page.goto(web_url + "/console")
    if initialized:
        await tab.rendered("/login")
        await tab.open("/setup")
        await expect(tab.page.locator("#view")).to_contain_text("already set up")
        return
    await tab.rendered("/setup")  # every URL leads to the wizard until it is done
    await tab.page.fill("#f-username", ROOT_USERNAME)
    await tab.page.fill("#f-password", ROOT_PASSWORD)
    await tab.page.fill("#f-confirmPassword", ROOT_PASSWORD)
    await tab.page.click("form button[type=submit]")
    await tab.rendered("/login")


async def _add_channel(tab: Tab, site: Site, model: str) -> str:
    name = unique_name("ch")
    await tab.open("/console/channel")
    await tab.page.click("#add-channel")
    dialog = tab.page.locator("dialog[open]")
    await dialog.locator("#f-type").select_option("1")
    await dialog.locator("#f-name").fill(name)
    await dialog.locator("#f-key").fill("sk-upstream-" + unique_name("k"))
    await dialog.locator("#f-base_url").fill(site.fake.url)
    await dialog.locator("#f-models").fill(model)
    await dialog.locator("#f-group").fill("default")
    await dialog.locator("button[type=submit]").click()
    await expect(tab.page.locator("#view tbody")).to_contain_text(name)
    return name


async def _create_key(tab: Tab, name: str, expires: datetime, model: str = "") -> None:
    """Every field of the form; limits that still let the playground's request through."""
    await tab.open("/console/token")
    await tab.page.get_by_role("button", name="Create key").click()
    dialog = tab.page.locator("dialog[open]")
    await dialog.locator("#f-name").fill(name)
    await dialog.locator("#f-remain_quota").fill(str(KEY_QUOTA))
    await dialog.locator("#f-unlimited_quota").uncheck()
    await dialog.locator("#f-expired_time").fill(expires.strftime("%Y-%m-%dT%H:%M"))
    if model:
        await dialog.locator("#f-model_limits_enabled").check()
        await dialog.locator("#f-model_limits").fill(model)
    await dialog.locator("#f-allow_ips").fill("127.0.0.1\n::1")
    await dialog.locator("#f-rate_limit_enabled").check()
    await dialog.locator("#f-rate_limit_period").fill("60")
    await dialog.locator("#f-rate_limit_count").fill("100")
    await dialog.locator("#f-rate_limit_success").fill("50")
    await dialog.locator("button[type=submit]").click()
    await expect(tab.page.locator("#view tbody")).to_contain_text(name)


async def _price_cheaply(site: Site, model: str) -> None:
    """(10 + 5 x 3) x 0.1 = 2.5 units: $0.000005, which four decimals showed as $0.0000."""
    options = {o["key"]: o["value"] for o in await site.root.call("GET", "/api/option/")}
    for key, value in (("ModelRatio", 0.1), ("CompletionRatio", 3.0)):
        table = json.loads(options.get(key) or "{}")
        table[model] = value
        await site.root.call("PUT", "/api/option/", json={"key": key, "value": json.dumps(table)})


async def test_setup_channel_key_playground_log_and_balance(
    open_tab: TabFactory, site: Site
) -> None:
    admin = await open_tab()
    await _setup_by_clicking(admin, site.web_url)
    await sign_in_root(admin)
    # The relay's address (ServerAddress, else RELAY_PUBLIC_URL following RELAY_PORT) with /v1.
    options = {o["key"]: o["value"] for o in await site.root.call("GET", "/api/option/")}
    address = options.get("ServerAddress") or site.relay_url
    await expect(admin.page.locator("#server-address")).to_have_text(address + "/v1")
    model = unique_name("m")
    await _add_channel(admin, site, model)
    await _price_cheaply(site, model)

    user = await open_tab()
    await sign_in(user, site.username, site.password)
    balance_before = await user.page.locator("#balance").inner_text()
    key_name = unique_name("k")
    expires = datetime.now() + timedelta(days=3)
    await _create_key(user, key_name, expires, model)
    [token] = [
        t for t in (await site.user.call("GET", "/api/token/"))["items"] if t["name"] == key_name
    ]
    assert token["remain_quota"] == KEY_QUOTA and token["unlimited_quota"] is False
    assert abs(token["expired_time"] - expires.timestamp()) < 60
    assert token["model_limits_enabled"] is True and token["model_limits"] == model
    assert token["allow_ips"] == "127.0.0.1\n::1"
    assert token["rate_limit_enabled"] is True
    limits = (token["rate_limit_period"], token["rate_limit_count"], token["rate_limit_success"])
    assert limits == (60, 100, 50)
    await wait_for_model(site.relay_url, token["key"], model)

    await user.open("/console/playground")
    await user.page.select_option("#play-key", label=key_name)
    await user.page.select_option("#play-model", model)
    await user.page.fill("#play-input", "Say hello")
    await user.page.click("#play-send")
    answer = user.page.locator(".msg.assistant.done")
    await expect(answer).to_have_text(site.fake.reply_text)
    [request] = site.fake.requests_for(model)
    assert request.body.get("stream") is True

    async def settled() -> dict[str, object] | None:
        logs = (await site.user.call("GET", "/api/log/self", params={"type": 2}))["items"]
        return next((log for log in logs if log["model_name"] == model), None)

    log = await eventually(settled)
    assert 0 < int(str(log["quota"])) < 25  # below $0.00005
    await user.open("/console/log")
    row = user.page.locator("#view tbody tr", has_text=model)
    await expect(row).to_contain_text("Consume")
    cost = await row.locator("td[data-label=Cost]").inner_text()
    assert re.fullmatch(r"\$0\.0*[1-9]\d*", cost), cost  # never "$0.0000"

    await user.open("/console")
    await expect(user.page.locator("#balance")).not_to_have_text(balance_before)
    await expect(user.page.locator("#request-count")).to_have_text("1")
    await expect(user.page.locator(".chart canvas")).to_have_count(2)  # by hour, by model
    admin.assert_clean()
    user.assert_clean()


async def test_key_delete_asks_first(open_tab: TabFactory, site: Site) -> None:
    tab = await open_tab()
    await sign_in(tab, site.username, site.password)
    name = unique_name("k")
    await _create_key(tab, name, datetime.now() + timedelta(days=1))
    row = tab.page.locator("#view tbody tr", has_text=name)
    await row.get_by_role("button", name="Delete").click()
    await tab.page.locator("dialog[open]").get_by_role("button", name="Cancel").click()
    await expect(row).to_have_count(1)
    await row.get_by_role("button", name="Delete").click()
    await tab.page.locator("dialog[open]").get_by_role("button", name="Confirm").click()
    await expect(row).to_have_count(0)
    tab.assert_clean()


async def test_log_rows_say_what_they_are(open_tab: TabFactory, site: Site) -> None:
    """An admin's quota change by clicking shows as an adjustment, not as a request."""
    admin = await open_tab()
    await sign_in_root(admin)
    await admin.open("/console/user")
    await admin.page.fill("#view input[type=search]", site.username)
    await admin.page.press("#view input[type=search]", "Enter")
    row = admin.page.locator("#view tbody tr", has_text=site.username)
    await row.get_by_role("button", name="Quota").click()
    dialog = admin.page.locator("dialog[open]")
    await dialog.locator("#f-quota_delta").fill("250000")
    await dialog.locator("button[type=submit]").click()
    await expect(dialog).to_have_count(0)

    user = await open_tab()
    await sign_in(user, site.username, site.password)
    await user.open("/console/log")
    rows = user.page.locator("#view tbody tr")
    # The balance set when the user was made, then the +$0.5 just given: both adjustments.
    await expect(rows.filter(has_text="Adjustment")).to_have_count(2)
    await expect(rows.filter(has_text="Consume")).to_have_count(0)
    await expect(rows.filter(has_text="$0.50")).to_have_count(1)

    # Root's first quota is a grant, found with the admin's user and type filters.
    await admin.open("/console/log")
    await admin.page.fill("#f-username", "root")
    await admin.page.select_option("#f-type", "3")
    await admin.page.click("#view form.filters button[type=submit]")
    await expect(admin.page.locator("#view tbody tr", has_text="Grant").first).to_be_visible()
    admin.assert_clean()
    user.assert_clean()
