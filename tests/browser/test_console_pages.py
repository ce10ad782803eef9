"""Every console page in headless chromium, per role: it renders without a console error,
the navigation offers only what the role may open, zh/en switch, and 390 px has no
horizontal overflow. Screenshots of the main pages go to SCREENSHOT_DIR (`make screenshots`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import expect

from tests.support.browser import (
    ADMIN,
    NARROW,
    PUBLIC,
    USER,
    WIDE,
    Site,
    Tab,
    TabFactory,
    sign_in,
    sign_in_root,
)
from tests.support.helpers import create_channel, create_token, root_console, unique_name
from tests.support.world import eventually

pytestmark = pytest.mark.browser


async def _visit_all(tab: Tab, paths: list[str]) -> None:
    for path in paths:
        await tab.open(path)
    tab.assert_clean()


async def test_public_pages_render_for_guests(open_tab: TabFactory, set_up: str) -> None:
    tab = await open_tab()
    await _visit_all(tab, PUBLIC)
    await expect(tab.page.locator("footer a", has_text="Veloera")).to_have_attribute(
        "href", "https://github.com/Veloera/Veloera"
    )
    await tab.page.goto(set_up + "/console/token")
    await tab.rendered("/login")  # a guest is sent to sign in
    tab.assert_clean()


async def test_user_pages_render_and_admin_pages_stay_closed(
    open_tab: TabFactory, site: Site
) -> None:
    tab = await open_tab()
    await sign_in(tab, site.username, site.password)
    await _visit_all(tab, [*USER, *PUBLIC[:3]])
    nav = tab.page.locator("#sidebar")
    await expect(nav.get_by_role("link", name="API keys")).to_be_visible()
    await expect(nav.get_by_role("link", name="Channels", exact=True)).to_have_count(0)
    await expect(nav.get_by_role("link", name="Settings", exact=True)).to_have_count(0)
    for path in ADMIN:
        await tab.page.goto(site.web_url + path)
        await expect(tab.page.locator("#view h1")).to_have_text("No access")
    tab.assert_clean()


async def test_settings_edit_ratios_as_tables(open_tab: TabFactory, set_up: str) -> None:
    """A model ratio added as a table row is saved as the ModelRatio JSON option."""
    tab = await open_tab()
    await sign_in_root(tab)
    await tab.open("/console/setting")
    await tab.page.get_by_role("tab", name="Ratios and prices").click()
    table = tab.page.locator('.ratio-table[data-key="ModelRatio"]')
    await table.get_by_role("button", name="Add row").click()
    model = unique_name("m")
    await table.locator("tbody tr").last.locator("input.k").fill(model)
    value = table.locator("tbody tr").last.locator("input.v")
    await value.fill("not a number")
    save = tab.page.get_by_role("button", name="Save Ratios and prices")
    await save.click()
    await expect(tab.page.locator(".toast.error")).to_contain_text("must be a number")
    await value.fill("1.5")
    await save.click()
    await expect(tab.page.locator(".toast.ok")).to_contain_text("options saved")
    root = await root_console(set_up)
    try:
        options = {o["key"]: o["value"] for o in await root.call("GET", "/api/option/")}
    finally:
        await root.aclose()
    assert json.loads(options["ModelRatio"])[model] == 1.5
    tab.assert_clean()


# Keys missing from one language, and keys the pages use that no dictionary has.
I18N_CHECK = """async () => {
  const { DICTIONARIES } = await import('/static/js/i18n.js');
  const en = Object.keys(DICTIONARIES.en), zh = Object.keys(DICTIONARIES.zh);
  const prefixes = new Set(en.map((k) => k.split('.')[0]));
  const files = ['main.js', 'ui.js', 'pages/public.js', 'pages/user.js', 'pages/admin.js'];
  const used = new Set();
  for (const f of files) {
    const text = await (await fetch('/static/js/' + f)).text();
    for (const m of text.matchAll(/"([a-z]+)\\.([A-Za-z]+)"/g)) {
      if (prefixes.has(m[1])) used.add(m[1] + '.' + m[2]);
    }
  }
  return {
    onlyEn: en.filter((k) => !zh.includes(k)),
    onlyZh: zh.filter((k) => !en.includes(k)),
    unknown: [...used].filter((k) => !en.includes(k)),
  };
}"""


async def test_language_switch_translates_and_sticks(open_tab: TabFactory, site: Site) -> None:
    tab = await open_tab()
    await sign_in(tab, site.username, site.password)
    await tab.open("/console/token")
    await tab.page.click("#lang-toggle")
    await expect(tab.page.locator("#sidebar")).to_contain_text("令牌")
    await expect(tab.page.locator("#view h1")).to_have_text("令牌")
    await tab.page.reload()
    await tab.rendered("/console/token")
    await expect(tab.page.locator("footer")).to_contain_text("许可")
    await expect(tab.page.locator("footer")).to_contain_text("Powered by Veloera")
    await tab.page.click("#lang-toggle")
    await expect(tab.page.locator("#view h1")).to_have_text("API keys")
    # Both languages have every key, and every key the pages use exists.
    missing = await tab.page.evaluate(I18N_CHECK)
    assert missing == {"onlyEn": [], "onlyZh": [], "unknown": []}
    tab.assert_clean()


async def test_dark_theme_switch_sticks(open_tab: TabFactory, set_up: str) -> None:
    tab = await open_tab()
    await tab.open("/pricing")
    html = tab.page.locator("html")
    light = await tab.page.evaluate("getComputedStyle(document.body).backgroundColor")
    await tab.page.click("#theme-toggle")
    await expect(html).to_have_attribute("data-theme", "dark")
    await tab.page.reload()
    await tab.rendered("/pricing")
    await expect(html).to_have_attribute("data-theme", "dark")
    dark = await tab.page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert dark != light
    tab.assert_clean()


async def _no_horizontal_overflow(tab: Tab) -> None:
    overflow = await tab.page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{tab.page.url} is {overflow}px wider than the 390px screen"


async def test_narrow_screen_navigation_folds_away(open_tab: TabFactory, site: Site) -> None:
    tab = await open_tab(viewport=NARROW)
    await sign_in(tab, site.username, site.password)
    await _no_horizontal_overflow(tab)
    sidebar = tab.page.locator("#sidebar")
    await expect(sidebar).to_be_hidden()
    await tab.page.click("#nav-toggle")
    await sidebar.get_by_role("link", name="Usage logs").click()
    await tab.rendered("/console/log")
    await expect(sidebar).to_be_hidden()
    tab.assert_clean()


SHOTS = ["/", "/pricing", "/login", *USER, *ADMIN]


async def test_screenshots_of_the_main_pages_and_no_overflow_at_390(
    open_tab: TabFactory, site: Site, screenshot_dir: Path | None
) -> None:
    """Root opens every console page at 390 px (no overflow, no console error); with a key and
    log rows the tables are not empty. `make screenshots` also takes the 1280 px pictures."""
    await create_token(site.root, name="a-rather-long-key-name")
    widths = [("390", NARROW)] if screenshot_dir is None else [("1280", WIDE), ("390", NARROW)]
    for label, viewport in widths:
        tab = await open_tab(viewport=viewport)
        await sign_in_root(tab)
        for path in SHOTS:
            await tab.open(path)
            if viewport is NARROW:
                await _no_horizontal_overflow(tab)
            if screenshot_dir is not None:
                name = path.strip("/").replace("/", "-") or "home"
                shot = screenshot_dir / f"{name}-{label}.png"
                await tab.page.screenshot(path=str(shot), full_page=True)
        tab.assert_clean()


async def test_pricing_search_and_group_filter(open_tab: TabFactory, site: Site) -> None:
    prefix = unique_name("p")
    plain, vip = prefix + "-a", prefix + "-b"
    await create_channel(site.root, base_url=site.fake.url, models=[plain])
    await create_channel(site.root, base_url=site.fake.url, models=[vip], group="vip")
    options = {o["key"]: o["value"] for o in await site.root.call("GET", "/api/option/")}
    ratios = json.loads(options.get("ModelRatio") or "{}")
    ratios.update({plain: 1.0, vip: 2.0})
    await site.root.call(
        "PUT", "/api/option/", json={"key": "ModelRatio", "value": json.dumps(ratios)}
    )
    tab = await open_tab()
    await tab.open("/pricing")
    rows = tab.page.locator("#view tbody tr")
    await tab.page.fill("#view input[type=search]", prefix)
    await expect(rows).to_have_count(2)
    await expect(rows.filter(has_text=plain)).to_contain_text("input $2.0000 / output $2.0000")
    await tab.page.select_option("#view select", "vip")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text(vip)
    tab.assert_clean()


async def test_register_with_an_invite_link_then_sign_in(open_tab: TabFactory, site: Site) -> None:
    aff = await site.root.call("GET", "/api/user/aff")
    tab = await open_tab()
    await tab.open(f"/register?aff={aff}")
    username = unique_name("r")
    await tab.page.fill("#f-username", username)
    await tab.page.fill("#f-password", "password123")
    await tab.page.fill("#f-password2", "password123")
    await tab.page.click("#view form button[type=submit]")
    await tab.rendered("/login")
    await sign_in(tab, username, "password123")
    found = await site.root.call("GET", "/api/user/search", params={"keyword": username})
    [user] = found["items"]
    assert user["inviter_id"] == site.root.user_id
    tab.assert_clean()


TEXTS = {
    "Notice": "**Maintenance** at noon",
    "HomePageContent": "# Welcome to the gateway",
    "About": "https://example.invalid/about",
}


@pytest.fixture
async def admin_texts(site: Site) -> AsyncIterator[None]:
    for key, value in TEXTS.items():
        await site.root.call("PUT", "/api/option/", json={"key": key, "value": value})

    async def shown() -> bool | None:
        async with httpx.AsyncClient(base_url=site.web_url, timeout=10.0) as client:
            notice = (await client.get("/api/notice")).json()["data"]
        return True if notice == TEXTS["Notice"] else None

    await eventually(shown)  # the web process caches options for a few seconds
    yield
    for key in TEXTS:
        await site.root.call("PUT", "/api/option/", json={"key": key, "value": ""})


async def test_notice_home_and_about_show_the_admins_texts(
    open_tab: TabFactory, site: Site, admin_texts: None
) -> None:
    tab = await open_tab()
    await tab.page.route("https://example.invalid/**", lambda route: route.fulfill(body="about"))
    await tab.open("/")
    notice = tab.page.locator("#notice")
    await expect(notice.locator("strong")).to_have_text("Maintenance")
    await expect(tab.page.locator("#view h1")).to_have_text("Welcome to the gateway")
    await tab.open("/about")
    await expect(tab.page.locator("#view iframe")).to_have_attribute("src", TEXTS["About"])
    await notice.get_by_role("button", name="Close").click()
    await expect(notice).to_be_hidden()
    await tab.page.reload()
    await tab.rendered("/about")
    await expect(notice).to_be_hidden()  # closed stays closed until the text changes
    tab.assert_clean()
