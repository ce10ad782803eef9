"""Console pages at scale (issue 14), run separately: `python -m bench.console_pages --dsn <db>`.

Starts the whole system on a database (typically the one `python -m bench.logs_bench` filled with
10 million log rows; `--rows N` fills a fresh or given database the same way first), then opens
every console page in headless Debian chromium, as a guest, as root and as a common user who owns
about ten thousand of those rows, the way a person would: the page's HTML and every `/api/*` call
its script makes. For each page it prints the median over `--repeats` warm loads of: the server
time of the page's HTML, the slowest of its API calls (server time, and which call), how many
calls it made, and the time until the page has rendered and the network is idle.

Server time is what chromium measured between sending the request and the first byte of the
answer (`responseStart - requestStart`), on loopback: the web service, its gRPC calls and
PostgreSQL, without the browser's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import asyncpg
from playwright.async_api import Browser, Page, Request, async_playwright

from bench.logs_bench import fill
from bench.stack import FakeProcess, Stack
from tests.support.browser import ADMIN, LAUNCH_FLAGS, PUBLIC, TASK_PAGES, USER, ensure_chromium
from tests.support.helpers import ROOT_PASSWORD, ROOT_USERNAME, create_user, root_console

RENDER_TIMEOUT_MS = 30_000


@dataclass
class Load:
    """One page load: the server time of the HTML and of each API call, in ms."""

    document_ms: float = 0.0
    calls: dict[str, float] = field(default_factory=dict)
    rendered_ms: float = 0.0


def _server_ms(request: Request) -> float:
    timing = request.timing
    return max(0.0, timing["responseStart"] - timing["requestStart"])


async def load_page(page: Page, base_url: str, path: str) -> Load:
    """Open `path` and wait for the view to render and the network to settle."""
    load = Load()
    finished: list[Request] = []

    def record(request: Request) -> None:
        finished.append(request)

    page.on("requestfinished", record)
    started = time.perf_counter()
    try:
        await page.goto(base_url + path)
        view = page.locator(f'#view [data-page="{path}"]')
        await view.wait_for(timeout=RENDER_TIMEOUT_MS)
        load.rendered_ms = (time.perf_counter() - started) * 1000
        # The calls a page makes after its frame is shown (tables, charts) are counted too.
        await page.wait_for_load_state("networkidle", timeout=RENDER_TIMEOUT_MS)
    finally:
        page.remove_listener("requestfinished", record)
    for request in finished:
        url = urlsplit(request.url)
        if request.resource_type == "document":
            load.document_ms = _server_ms(request)
        elif url.path.startswith("/api/"):
            name = f"{request.method} {url.path}"
            load.calls[name] = max(load.calls.get(name, 0.0), _server_ms(request))
    return load


def report(role: str, path: str, loads: list[Load]) -> None:
    slowest_name, slowest = "", 0.0
    for name in {name for load in loads for name in load.calls}:
        median = statistics.median(load.calls.get(name, 0.0) for load in loads)
        if median >= slowest:
            slowest_name, slowest = name, median
    document = statistics.median(load.document_ms for load in loads)
    rendered = statistics.median(load.rendered_ms for load in loads)
    calls = max(len(load.calls) for load in loads)
    print(
        f"{role:6} {path:22} {document:8.1f} {slowest:9.1f} {calls:6} {rendered:9.1f}"
        f"  {slowest_name}",
        flush=True,
    )


async def sign_in(page: Page, base_url: str, username: str, password: str) -> None:
    await page.goto(base_url + "/login")
    await page.fill("#f-username", username)
    await page.fill("#f-password", password)
    await page.click("form button[type=submit]")
    await page.locator('#view [data-page="/console"]').wait_for(timeout=RENDER_TIMEOUT_MS)


async def measure_role(
    browser: Browser,
    base_url: str,
    role: str,
    paths: list[str],
    login: tuple[str, str] | None,
    repeats: int,
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = await context.new_page()
        if login is not None:
            await sign_in(page, base_url, *login)
        for path in paths:
            await load_page(page, base_url, path)  # warm: templates, caches, the pool
            loads = [await load_page(page, base_url, path) for _ in range(repeats)]
            report(role, path, loads)
    finally:
        await context.close()


async def measure(web_url: str, dsn: str, repeats: int) -> None:
    root = await root_console(web_url)
    try:
        user, user_id = await create_user(root, quota=5_000_000)
        username = str((await user.call("GET", "/api/user/self"))["username"])
        await user.aclose()
    finally:
        await root.aclose()
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "billing"})
    try:
        owned = await conn.fetchval("SELECT count(*) FROM logs WHERE user_id = $1", user_id)
        everything = await conn.fetchval("SELECT count(*) FROM logs")
    finally:
        await conn.close()
    print(f"user {username} owns {owned:,} of {everything:,} log rows; root sees them all")
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            executable_path=str(ensure_chromium()), args=LAUNCH_FLAGS, timeout=30_000
        )
        print(
            f"{'role':6} {'page':22} {'html ms':>8} {'api ms':>9} {'calls':>6} {'shown ms':>9}"
            "  slowest call (median of its loads)"
        )
        try:
            await measure_role(browser, web_url, "guest", PUBLIC, None, repeats)
            user_pages, user_login = USER + TASK_PAGES, (username, "password123")
            await measure_role(browser, web_url, "user", user_pages, user_login, repeats)
            root_login = (ROOT_USERNAME, ROOT_PASSWORD)
            await measure_role(browser, web_url, "root", user_pages + ADMIN, root_login, repeats)
        finally:
            await browser.close()
    finally:
        await playwright.stop()


async def run(dsn: str, rows: int, repeats: int) -> None:
    # Hundreds of calls and a few sign-ins a minute from one address: the limits are not measured.
    no_limit = {
        "GLOBAL_API_RATE_LIMIT_ENABLE": "false",
        "GLOBAL_WEB_RATE_LIMIT_ENABLE": "false",
        "CRITICAL_RATE_LIMIT_ENABLE": "false",
    }
    stack = Stack(
        fake=FakeProcess(port=0, args=[]), log_level="WARNING", dsn=dsn, extra_env=no_limit
    )
    try:
        await stack.start()
        await fill(stack.dsn, rows, skip_generate=rows == 0)
        await measure(stack.web_url, stack.dsn, repeats)
    finally:
        stack.stop()
        shutil.rmtree(stack.work_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", default="", help="a database (e.g. the logs bench's)")
    parser.add_argument("--rows", type=int, default=0, help="fill the logs up to N rows first")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.dsn, args.rows, args.repeats))


if __name__ == "__main__":
    main()
