"""Browser fixtures: one headless Debian chromium per session, driven by Playwright (async).

Playwright's own browser download cannot work offline, so the tests use /usr/bin/chromium and
install Debian's package when it is missing (as root; otherwise they fail saying how to)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from tests.fakes.openai_upstream import FakeOpenAI
from tests.helpers import ROOT_PASSWORD, ROOT_USERNAME, Console, create_user, root_console

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_TIMEOUT = 600.0
WIDE = {"width": 1280, "height": 900}
# The console's pages by the role that may open them (also what bench/console_pages.py times).
PUBLIC = ["/", "/pricing", "/about", "/login", "/register", "/reset"]
USER = [
    "/console",
    "/console/token",
    "/console/log",
    "/console/playground",
    "/console/topup",
    "/console/inbox",
    "/console/personal",
]
ADMIN = [
    "/console/channel",
    "/console/user",
    "/console/redemption",
    "/console/message",
    "/console/setting",
]
TASK_PAGES = ["/console/midjourney", "/console/task"]  # shown once drawing / tasks are on
NARROW = {"width": 390, "height": 844}


def ensure_chromium() -> Path:
    """Debian's chromium, installed with apt-get when missing and this process is root."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail("browser tests need /usr/bin/chromium: run `apt-get install -y chromium`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        subprocess.run(command, check=True, env=env, timeout=INSTALL_TIMEOUT, capture_output=True)
    return CHROMIUM


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


@dataclass
class Tab:
    """One browser context and page that records every console error and page error."""

    context: BrowserContext
    page: Page
    base_url: str
    errors: list[str] = field(default_factory=list)

    async def open(self, path: str) -> None:
        """Go to a console URL and wait until its page has rendered."""
        await self.page.goto(self.base_url + path)
        await self.rendered(path.split("?")[0])

    async def rendered(self, path: str) -> None:
        await self.page.locator(f'#view [data-page="{path}"]').wait_for(timeout=10_000)

    def assert_clean(self) -> None:
        assert self.errors == [], f"console errors: {self.errors}"


TabFactory = Callable[..., Awaitable[Tab]]


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


async def sign_in(tab: Tab, username: str, password: str) -> None:
    """Sign in through the login form; lands on the dashboard."""
    await tab.open("/login")
    await tab.page.fill("#f-username", username)
    await tab.page.fill("#f-password", password)
    await tab.page.click("form button[type=submit]")
    await tab.rendered("/console")


async def sign_in_root(tab: Tab) -> None:
    await sign_in(tab, ROOT_USERNAME, ROOT_PASSWORD)


@dataclass
class Site:
    """The running system as the browser tests use it."""

    web_url: str
    relay_url: str
    fake: FakeOpenAI
    root: Console
    user: Console
    username: str
    password: str


USER_PASSWORD = "password123"


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
