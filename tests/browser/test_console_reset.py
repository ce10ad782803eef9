"""Password reset by clicking: the reset page mails a link (real SMTP on loopback), the
link's page resets on a click and shows the new password, which then signs in."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Iterator

import pytest
from aiosmtpd.controller import Controller
from playwright.async_api import expect

from services.cli.infra import free_port
from tests.support.browser import Site, TabFactory, sign_in
from tests.support.mail import Mailbox
from tests.support.world import eventually

pytestmark = pytest.mark.browser

LINK = re.compile(r"https?://[^\s\"'<>]+/user/reset\?[^\s\"'<>]+")


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
async def smtp(site: Site, mailbox: tuple[Mailbox, int]) -> AsyncIterator[Mailbox]:
    """SMTP options pointing at the loopback server; the reset link points at the console."""
    values = {
        "SMTPServer": "127.0.0.1",
        "SMTPPort": str(mailbox[1]),
        "SMTPFrom": "noreply@example.test",
        "SMTPSSLEnabled": "false",
        "ServerAddress": site.web_url,
    }
    before = {o["key"]: o["value"] for o in await site.root.call("GET", "/api/option/")}
    for key, value in values.items():
        await site.root.call("PUT", "/api/option/", json={"key": key, "value": value})
    yield mailbox[0]
    for key in values:
        await site.root.call("PUT", "/api/option/", json={"key": key, "value": before.get(key, "")})


async def test_reset_link_sets_a_new_password_that_signs_in(
    open_tab: TabFactory, site: Site, smtp: Mailbox
) -> None:
    address = f"{site.username}@example.com"
    user_id = (await site.user.call("GET", "/api/user/self"))["id"]
    await site.root.call("PUT", "/api/user/", json={"id": user_id, "email": address})
    tab = await open_tab()
    await tab.open("/reset")
    await tab.page.fill("#f-email", address)
    await tab.page.click("#view form button[type=submit]")
    await expect(tab.page.locator(".toast.ok")).to_be_visible()

    async def mailed() -> str | None:
        mails = smtp.to(address)
        found = LINK.search(html.unescape(mails[0].body)) if mails else None
        return found.group(0) if found else None

    link = await eventually(mailed)
    assert link.startswith(site.web_url + "/user/reset?")
    await tab.page.goto(link)
    await tab.rendered("/reset")
    await tab.page.click("#confirm-reset")
    password = await tab.page.locator("#new-password").inner_text()
    assert len(password) >= 8
    await sign_in(tab, site.username, password)
    tab.assert_clean()
