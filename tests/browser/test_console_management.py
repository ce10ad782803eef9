"""Admin pages by clicking: the channel form's checks and multi-key editor, and managing users."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import expect

from tests.support.browser import Site, TabFactory, sign_in, sign_in_root
from tests.support.helpers import create_channel, unique_name

pytestmark = pytest.mark.browser


async def test_channel_form_checks_mappings_and_keeps_keys_apart(
    open_tab: TabFactory, site: Site
) -> None:
    tab = await open_tab()
    await sign_in_root(tab)
    await tab.open("/console/channel")
    await tab.page.click("#add-channel")
    dialog = tab.page.locator("dialog[open]")
    name = unique_name("ch")
    await dialog.locator("#f-name").fill(name)
    await dialog.locator("#f-key").fill("sk-one\nsk-two")
    await dialog.locator("#f-base_url").fill(site.fake.url)
    await dialog.locator("#f-models").fill(unique_name("m"))
    error = dialog.locator(".form-error")
    # Checked in the page before anything is sent...
    await dialog.locator("#f-model_mapping").fill('{"gpt-4o": ""}')
    await dialog.locator("button[type=submit]").click()
    await expect(error).to_have_text("Model mapping must map model names to non-empty model names.")
    await dialog.locator("#f-model_mapping").fill('{"gpt-4o": "gpt-4o-mini"}')
    # ...and what only the API knows comes back as its message.
    await dialog.locator("#f-status_code_mapping").fill('{"teapot": "500"}')
    await dialog.locator("button[type=submit]").click()
    await expect(error).to_contain_text("status_code_mapping")
    await dialog.locator("#f-status_code_mapping").fill('{"429": "500"}')
    await dialog.locator("button[type=submit]").click()
    row = tab.page.locator("#view tbody tr", has_text=name)
    await expect(row).to_have_count(1)

    await row.get_by_role("button", name="Edit").click()
    keys = tab.page.locator("dialog[open] .key-list li")
    await expect(keys).to_have_count(2)  # one key per line: a two-key channel
    await expect(tab.page.locator("dialog[open] #f-model_mapping")).to_have_value(
        '{"gpt-4o": "gpt-4o-mini"}'
    )
    tab.assert_clean()


async def test_channel_test_balance_and_model_list_by_clicking(
    open_tab: TabFactory, site: Site
) -> None:
    name = unique_name("ch")
    await create_channel(site.root, base_url=site.fake.url, models=["gpt-4o-mini"], name=name)
    tab = await open_tab()
    await sign_in_root(tab)
    await tab.open("/console/channel")
    await tab.page.fill("#f-keyword", name)
    await tab.page.click("#view form.filters button[type=submit]")
    row = tab.page.locator("#view tbody tr", has_text=name)
    await expect(row.locator(".response-time")).to_have_text("not tested")

    await row.get_by_role("button", name="Test", exact=True).click()  # against the fake upstream
    await expect(tab.page.locator(".toast.ok")).to_contain_text("Test passed")
    await expect(row.locator(".response-time")).to_have_text(re.compile(r"^\d+\.\d\d s$"))

    await row.get_by_role("button", name="Update balance").click()  # OpenAI's billing API
    await expect(row.locator(".balance")).to_have_text(
        f"${site.fake.credit_usd - site.fake.used_usd:.2f}"
    )

    await row.get_by_role("button", name="Edit").click()
    dialog = tab.page.locator("dialog[open]")
    await dialog.locator("#f-models").fill("")
    await dialog.get_by_role("button", name="Fetch models").click()
    await expect(dialog.locator("#f-models")).to_have_value(",".join(site.fake.models))
    tab.assert_clean()


async def test_users_are_managed_by_clicking(open_tab: TabFactory, site: Site) -> None:
    tab = await open_tab()
    await sign_in_root(tab)
    await tab.open("/console/user")
    search = tab.page.locator("#view input[type=search]")
    await search.fill(site.username)
    await search.press("Enter")
    row = tab.page.locator("#view tbody tr", has_text=site.username)
    await expect(row).to_have_count(1)

    await row.get_by_role("button", name="Disable").click()
    await expect(row).to_contain_text("Disabled")
    refused = await site.user.envelope("GET", "/api/user/self")
    assert refused["success"] is False
    await row.get_by_role("button", name="Enable").click()
    await expect(row).to_contain_text("Enabled")

    await row.get_by_role("button", name="Promote").click()
    await expect(row.locator("td[data-label=Role]")).to_have_text("Admin")
    await row.get_by_role("button", name="Demote").click()
    await expect(row.locator("td[data-label=Role]")).to_have_text("User")

    await row.get_by_role("button", name="Edit").click()
    dialog = tab.page.locator("dialog[open]")
    await dialog.locator("#f-display_name").fill("Renamed")
    await dialog.locator("button[type=submit]").click()
    await expect(row).to_contain_text("Renamed")

    await row.get_by_role("button", name="Delete").click()
    await tab.page.locator("dialog[open]").get_by_role("button", name="Confirm").click()
    await expect(row).to_have_count(0)
    tab.assert_clean()


async def test_message_reaches_the_inbox_with_an_unread_count(
    open_tab: TabFactory, site: Site
) -> None:
    user_id = (await site.user.call("GET", "/api/user/self"))["id"]
    admin = await open_tab()
    await sign_in_root(admin)
    await admin.open("/console/message")
    await admin.page.get_by_role("button", name="New message").click()
    dialog = admin.page.locator("dialog[open]")
    title = unique_name("t")
    await dialog.locator("#f-title").fill(title)
    await dialog.locator("#f-content").fill("**Maintenance** tonight")
    await dialog.locator("#f-to_all").uncheck()
    await dialog.locator("#f-user_ids").fill(str(user_id))
    await dialog.locator("button[type=submit]").click()
    await expect(admin.page.locator("#view tbody tr", has_text=title)).to_have_count(1)

    user = await open_tab()
    await sign_in(user, site.username, site.password)
    await expect(user.page.locator("#unread")).to_have_text("1")
    await user.page.click("#inbox-link")
    await user.rendered("/console/inbox")
    await user.page.get_by_text(title).click()
    await expect(user.page.locator("details[open] .md strong")).to_have_text("Maintenance")
    await expect(user.page.locator("#unread")).to_be_hidden()
    admin.assert_clean()
    user.assert_clean()


async def test_personal_settings_access_token_and_sessions(
    open_tab: TabFactory, site: Site
) -> None:
    tab = await open_tab()
    await sign_in(tab, site.username, site.password)
    await tab.open("/console/personal")
    await tab.page.get_by_role("button", name="Generate a new access token").click()
    token = tab.page.locator("#access-token")
    await expect(token).not_to_have_text("")
    user_id = (await site.user.call("GET", "/api/user/self"))["id"]
    async with httpx.AsyncClient(base_url=site.web_url, timeout=10.0) as client:
        reply = await client.get(
            "/api/user/self",
            headers={
                "Authorization": f"Bearer {await token.inner_text()}",
                "Veloera-User": str(user_id),
            },
        )
    assert reply.json()["data"]["username"] == site.username

    # The test's own API session is another session: signing it out here ends it.
    sessions = tab.page.locator("section").filter(
        has=tab.page.get_by_role("heading", name="Sessions", exact=True)
    )
    rows = sessions.locator("tbody tr")
    await expect(rows.filter(has_text="This browser")).to_have_count(1)
    await expect(rows).to_have_count(2)
    await rows.get_by_role("button", name="Sign out").click()
    await expect(rows).to_have_count(1)
    refused = await site.user.envelope("GET", "/api/user/self")
    assert refused["success"] is False
    tab.assert_clean()


async def test_channels_tagged_disabled_and_deleted_in_bulk(
    open_tab: TabFactory, site: Site
) -> None:
    prefix = unique_name("b")
    for suffix in ("1", "2"):
        await create_channel(
            site.root, base_url=site.fake.url, models=[unique_name("m")], name=prefix + suffix
        )
    tab = await open_tab()
    await sign_in_root(tab)
    await tab.open("/console/channel")
    await tab.page.fill("#f-keyword", prefix)
    await tab.page.click("#view form.filters button[type=submit]")
    rows = tab.page.locator("#view tbody tr", has_text=prefix)
    await expect(rows).to_have_count(2)

    async def select_both() -> None:
        # The list reloads after each action; a box ticked before that reload lands is lost.
        await tab.page.wait_for_load_state("networkidle")
        for suffix in ("1", "2"):
            await tab.page.get_by_label(f"Select {prefix}{suffix}").check()
        for suffix in ("1", "2"):
            await expect(tab.page.get_by_label(f"Select {prefix}{suffix}")).to_be_checked()

    await select_both()
    await tab.page.get_by_role("button", name="Tag selected").click()
    await tab.page.locator("dialog[open] #f-tag").fill(prefix)
    await tab.page.locator("dialog[open] button[type=submit]").click()
    await expect(rows.filter(has_text="Enabled")).to_have_count(2)

    await tab.page.get_by_role("button", name="Tags", exact=True).click()
    dialog = tab.page.locator("dialog[open]")
    await dialog.locator("#f-tag").select_option(prefix)
    await dialog.locator("#f-action").select_option("disabled")
    await dialog.locator("button[type=submit]").click()
    await expect(rows.filter(has_text="Disabled")).to_have_count(2)

    await select_both()
    await tab.page.get_by_role("button", name="Delete selected").click()
    await tab.page.locator("dialog[open]").get_by_role("button", name="Confirm").click()
    await expect(rows).to_have_count(0)
    tab.assert_clean()


async def test_codes_disabled_by_selection_and_deleted_by_name(
    open_tab: TabFactory, site: Site
) -> None:
    name = unique_name("rc")
    await site.root.call("POST", "/api/redemption/", json={"name": name, "quota": 5, "count": 3})
    tab = await open_tab()
    await sign_in_root(tab)
    await tab.open("/console/redemption")
    search = tab.page.get_by_role("searchbox", name="Search codes")
    await search.fill(name)
    await search.press("Enter")
    rows = tab.page.locator("#view tbody tr", has_text=name)
    await expect(rows).to_have_count(3)
    await tab.page.locator("#view tbody tr", has_text=name).first.get_by_role("checkbox").check()
    await tab.page.click("#codes-disable-selected")
    # the status badge (a row's text also runs "Disable" into "Delete")
    badge = tab.page.locator("#view tbody tr .badge")
    await expect(badge.filter(has_text="Disabled")).to_have_count(1)
    await expect(badge.filter(has_text="Unused")).to_have_count(2)

    await tab.page.click("#codes-delete-by-name")
    await tab.page.locator("dialog[open] #f-name").fill(name)
    await tab.page.locator("dialog[open] button[type=submit]").click()
    confirm = tab.page.locator("dialog[open]", has_text=f'Delete all 3 codes named "{name}"?')
    await confirm.get_by_role("button", name="Confirm").click()
    await expect(rows).to_have_count(0)
    assert await site.root.call("GET", "/api/redemption/count-by-name", params={"name": name}) == 0
    tab.assert_clean()


async def test_an_ended_session_sends_the_page_to_sign_in(open_tab: TabFactory, site: Site) -> None:
    tab = await open_tab()
    await sign_in(tab, site.username, site.password)
    sessions = await site.user.call("GET", "/api/user/sessions")
    [browser_session] = [s for s in sessions if not s["current"]]
    await site.user.call("DELETE", f"/api/user/sessions/{browser_session['id']}")
    await tab.page.locator("#sidebar").get_by_role("link", name="API keys").click()
    await tab.rendered("/login")
    assert tab.page.url.endswith("/login?next=%2Fconsole%2Ftoken")
    await expect(tab.page.locator("#logout")).to_be_hidden()
    await sign_in(tab, site.username, site.password)
