"""Browser fixtures: one headless Debian chromium per session, driven by Playwright (async).

Playwright's own browser download cannot work offline, so the tests use /usr/bin/chromium and
install Debian's package when it is missing (as root; otherwise they fail saying how to)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, async_playwright

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.browser import (
    LAUNCH_FLAGS,
    USER_PASSWORD,
    WIDE,
    Site,
    Tab,
    TabFactory,
    ensure_chromium,
)
from tests.support.helpers import create_user, root_console


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    return ensure_chromium()


@pytest.fixture(scope="session")
async def browser(chromium_path: Path) -> AsyncIterator[Browser]:
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium_path), args=LAUNCH_FLAGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            await browser.close()
    finally:
        await playwright.stop()


@pytest.fixture
async def open_tab(browser: Browser, web_url: str) -> AsyncIterator[TabFactory]:
    """Opens tabs (each its own context: cookies and storage) and closes them afterwards."""
    opened: list[Tab] = []

    async def factory(viewport: dict[str, int] = WIDE, lang: str = "en") -> Tab:
        context = await browser.new_context(viewport=viewport)  # type: ignore[arg-type]
        context.set_default_timeout(10_000)
        # The console's own pages only (frames of other origins may not touch storage).
        await context.add_init_script(
            f"if (location.origin === '{web_url}' && !localStorage.getItem('veloera-lang'))"
            f" localStorage.setItem('veloera-lang', '{lang}');"
        )
        page = await context.new_page()
        tab = Tab(context=context, page=page, base_url=web_url)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                tab.errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: tab.errors.append(str(error)))
        opened.append(tab)
        return tab

    yield factory
    for tab in opened:
        await tab.context.close()


@pytest.fixture
async def site(
    web_url: str, relay_url: str, fake_openai: FakeOpenAI, tasks_service: object
) -> AsyncIterator[Site]:
    """Root (set up through the API when no earlier test did it) and a fresh common user."""
    root = await root_console(web_url)
    user, user_id = await create_user(root, quota=5_000_000)
    found = await root.call("GET", f"/api/user/{user_id}")
    try:
        yield Site(
            web_url=web_url,
            relay_url=relay_url,
            fake=fake_openai,
            root=root,
            user=user,
            username=str(found["username"]),
            password=USER_PASSWORD,
        )
    finally:
        await user.aclose()
        await root.aclose()


@pytest.fixture
async def set_up(web_url: str) -> AsyncIterator[str]:
    """The web URL of a system whose root exists (for tests that need no user of their own)."""
    root = await root_console(web_url)
    await root.aclose()
    yield web_url


@pytest.fixture(scope="session")
def screenshot_dir() -> Path | None:
    """Where `make screenshots` wants the pictures (SCREENSHOT_DIR); None in a plain test run."""
    configured = os.environ.get("SCREENSHOT_DIR", "")
    if not configured:
        return None
    path = Path(configured)
    path.mkdir(parents=True, exist_ok=True)
    return path
