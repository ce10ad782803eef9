"""Signing in with OpenID Connect from the login page: the button goes to the provider (a
loopback fake whose consent page approves at once), which sends the browser back to the
console's /oauth/oidc page; that finishes the sign-in and lands on the dashboard."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect

from tests.fakes.signin import FakeOAuthProvider, LoopbackServer
from tests.support.browser import Site, TabFactory, sign_in
from tests.support.web_kit import set_options
from tests.support.world import eventually

pytestmark = pytest.mark.browser


@pytest.fixture
async def oidc(site: Site, saved_options: None) -> AsyncIterator[FakeOAuthProvider]:
    """OIDC switched on against a loopback fake (options put back by `saved_options`)."""
    fake = FakeOAuthProvider("console-client", "console-secret-0123456789")
    server = LoopbackServer(fake.app())
    await server.start()
    fake.url = server.url
    values = {
        "oidc.client_id": fake.client_id,
        "oidc.client_secret": fake.client_secret,
        "oidc.well_known": f"{fake.url}/.well-known/openid-configuration",
        "oidc.enabled": "true",
    }
    await set_options(site.root, values)

    async def advertised() -> bool | None:  # the console caches options for a few seconds
        status = await site.root.call("GET", "/api/status")
        return True if status["oidc_enabled"] else None

    await eventually(advertised)
    try:
        yield fake
    finally:
        await server.stop()


async def test_oidc_button_signs_in_through_the_provider(
    open_tab: TabFactory, site: Site, oidc: FakeOAuthProvider
) -> None:
    subject = f"browser-{secrets.token_hex(4)}"
    oidc.consenting_user = {"sub": subject, "preferred_username": "Browser Bob"}
    tab = await open_tab()
    await tab.open("/login")
    button = tab.page.locator("#oauth-oidc")
    await expect(button).to_be_visible()
    await expect(tab.page.locator("#oauth-github")).to_have_count(0)  # GitHub is off
    await button.click()
    await tab.rendered("/console")
    me = await tab.page.evaluate(
        "fetch('/api/user/self', {headers: {'Veloera-User': localStorage.getItem('veloera-user')}})"
        ".then((r) => r.json())"
    )
    assert me["data"]["oidc_id"] == subject
    assert me["data"]["display_name"] == "Browser Bob"
    tab.assert_clean()


async def test_personal_page_binds_and_unbinds_an_oidc_account(
    open_tab: TabFactory, site: Site, oidc: FakeOAuthProvider
) -> None:
    subject = f"bind-{secrets.token_hex(4)}"
    oidc.consenting_user = {"sub": subject, "preferred_username": "Bound"}
    tab = await open_tab()
    await sign_in(tab, site.username, site.password)
    await tab.open("/console/personal")
    await tab.page.click("#bind-oidc")
    # the provider sends the browser back; signed in, the callback binds
    await tab.rendered("/console/personal")
    await expect(tab.page.locator("#unbind-oidc")).to_be_visible()
    assert (await site.user.call("GET", "/api/user/self"))["oidc_id"] == subject
    await tab.page.click("#unbind-oidc")
    await expect(tab.page.locator("#bind-oidc")).to_be_visible()
    assert (await site.user.call("GET", "/api/user/self"))["oidc_id"] == ""
    tab.assert_clean()
