"""Two-factor authentication and passkeys in the console. A user turns 2FA on from personal
settings (QR code, first code, backup codes shown once); then signing in asks for a code after
the password, and only the right code lands on the dashboard. Codes come from pyotp, as an
authenticator app would compute them. A passkey added in settings (Chromium's virtual
authenticator) signs in from the login page. Fresh users keep the shared one as it is."""

from __future__ import annotations

import time

import httpx
import pyotp
import pytest
from playwright.async_api import expect

from tests.support.browser import Site, Tab, TabFactory, sign_in
from tests.support.helpers import create_user

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("closes_clients")]


async def session_of(tab: Tab, site: Site, user_id: int) -> bool:
    """Whether the tab's cookies hold a session for the user (asked outside the page, so a
    refusal is not a console error)."""
    cookies = {c["name"]: c["value"] for c in await tab.context.cookies()}
    async with httpx.AsyncClient(base_url=site.web_url, cookies=cookies, timeout=10.0) as client:
        reply = await client.get("/api/user/self", headers={"Veloera-User": str(user_id)})
    return bool(reply.json()["success"])


async def enrol(tab: Tab) -> str:
    """Two-factor switched on from the personal page; returns the secret it showed."""
    await tab.open("/console/personal")
    await tab.page.click("#twofa-setup")
    await expect(tab.page.locator("#twofa-qr")).to_be_visible()
    src = await tab.page.locator("#twofa-qr").get_attribute("src")
    assert src is not None and src.startswith("data:image/svg+xml")
    secret = (await tab.page.locator("#twofa-secret").inner_text()).strip()
    await tab.page.fill("#twofa-enable-code", pyotp.TOTP(secret).now())
    await tab.page.click("#twofa-enable button[type=submit]")
    codes = tab.page.locator("#backup-codes pre")
    await expect(codes).to_be_visible()
    assert len((await codes.inner_text()).split()) == 10
    await expect(tab.page.locator("#twofa")).to_contain_text("10 backup codes left")
    return secret


async def test_login_asks_for_the_second_factor_once_enabled(
    open_tab: TabFactory, site: Site
) -> None:
    user, user_id = await create_user(site.root, quota=0)
    username = (await user.call("GET", "/api/user/self"))["username"]
    first = await open_tab()
    await sign_in(first, username, "password123")
    secret = await enrol(first)
    first.assert_clean()

    tab = await open_tab()
    await tab.open("/login")
    await expect(tab.page.locator("footer")).to_contain_text("Powered by Veloera")
    await expect(tab.page.locator("#passkey-login")).to_be_visible()
    await tab.page.fill("#f-username", username)
    await tab.page.fill("#f-password", "password123")
    await tab.page.click("form button[type=submit]")
    await expect(tab.page.locator("#twofa-form")).to_be_visible()
    assert not await session_of(tab, site, user_id)  # no session yet

    totp = pyotp.TOTP(secret)
    wrong = next(c for c in ("000000", "111111") if not totp.verify(c, valid_window=1))
    await tab.page.fill("#twofa-code", wrong)
    await tab.page.click("#twofa-form button[type=submit]")
    await expect(tab.page.locator("#toast")).to_contain_text("wrong")
    assert not await session_of(tab, site, user_id)

    # the enrolment used this step's code; the next step's is within the window
    await tab.page.fill("#twofa-code", totp.at(time.time() + 30))
    await tab.page.click("#twofa-form button[type=submit]")
    await tab.rendered("/console")
    assert await session_of(tab, site, user_id)
    await expect(tab.page.locator("footer")).to_contain_text("Powered by Veloera")
    tab.assert_clean()


async def test_a_passkey_added_in_settings_signs_in_from_the_login_page(
    open_tab: TabFactory, site: Site
) -> None:
    """Chromium's virtual authenticator plays the user's device. Passkeys need a secure
    context whose host is a domain, so the console is opened as localhost (the relying party
    follows the origin the request came to)."""
    user, user_id = await create_user(site.root, quota=0)
    username = (await user.call("GET", "/api/user/self"))["username"]
    tab = await open_tab()
    tab.base_url = site.web_url.replace("127.0.0.1", "localhost")
    cdp = await tab.context.new_cdp_session(tab.page)
    await cdp.send("WebAuthn.enable")
    await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                "hasUserVerification": True, "isUserVerified": True,
            }
        },
    )  # fmt: skip
    await sign_in(tab, username, "password123")
    await tab.open("/console/personal")
    await tab.page.fill("#passkey-name", "Laptop")
    await tab.page.click("#passkey-add")
    await expect(tab.page.locator("#passkeys tbody")).to_contain_text("Laptop")

    await tab.page.click("#logout")
    await tab.rendered("/login")
    await expect(tab.page.locator("#logout")).to_be_hidden()
    assert not await session_of(tab, site, user_id)
    await tab.page.click("#passkey-login")
    await tab.rendered("/console")
    assert await session_of(tab, site, user_id)
    tab.assert_clean()
