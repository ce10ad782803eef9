"""Drawing logs by clicking: a Midjourney task the user submitted through the relay shows on
/console/midjourney with its prompt, status and cost; the navigation offers the page once
/api/status says drawing is on."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import expect

from tests.fakes.task_upstream import FakeTaskUpstream
from tests.support.browser import Site, TabFactory, sign_in
from tests.support.helpers import create_channel, create_token
from tests.support.relay_kit import set_model_price
from tests.support.world import eventually, wait_for_model

pytestmark = pytest.mark.browser


async def test_a_submitted_drawing_shows_in_the_drawing_logs(
    open_tab: TabFactory, site: Site, fake_tasks: FakeTaskUpstream
) -> None:
    await set_model_price(site.root, "mj_imagine", 0.02)
    await create_channel(
        site.root, base_url=fake_tasks.url, models=["mj_imagine"], type=2, key=fake_tasks.key
    )
    token = await create_token(site.user)
    await wait_for_model(site.relay_url, token["key"], "mj_imagine")
    async with httpx.AsyncClient(base_url=site.relay_url, timeout=30) as relay:
        reply = await relay.post(
            "/mj/submit/imagine",
            json={"prompt": "a lighthouse at dawn"},
            headers={"Authorization": f"Bearer sk-{token['key']}"},
        )
    assert reply.status_code == 200 and reply.json()["code"] == 1, reply.text

    async def stored() -> bool | None:  # the tasks service stores it a moment after the answer
        page = await site.user.call("GET", "/api/mj/self")
        return True if page["items"] else None

    await eventually(stored)
    tab = await open_tab()
    await sign_in(tab, site.username, site.password)
    await expect(tab.page.get_by_role("link", name="Drawing logs")).to_be_visible()
    await tab.page.get_by_role("link", name="Drawing logs").click()
    await tab.rendered("/console/midjourney")
    row = tab.page.locator("#view tbody tr", has_text="a lighthouse at dawn")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("$0.02")
    await expect(tab.page.locator("footer")).to_contain_text("Powered by")
    tab.assert_clean()
