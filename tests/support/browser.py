"""Driving the console in headless Debian chromium: the pages by role, tabs that record console
errors, signing in."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.helpers import ROOT_PASSWORD, ROOT_USERNAME, Console

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
