"""Admin pages by clicking: the channel form's checks and multi-key editor, and managing users."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Site, TabFactory, sign_in_root
from tests.helpers import unique_name

pytestmark = pytest.mark.e2e


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
