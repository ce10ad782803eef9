"""Async task helpers: a drawer (a user with a key for the task fake), waiting for a task to
finish."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.fakes.task_upstream import FakeTaskUpstream
from tests.support.helpers import Console, create_channel, create_token, create_user
from tests.support.relay_kit import options as options
from tests.support.relay_kit import set_model_price
from tests.support.relay_kit import world as world
from tests.support.world import World, eventually, wait_for_model

MJ_PRICE_USD = 0.02  # 10_000 units at the default 500_000 per USD


BUDGET = 100_000


@dataclass
class Drawer:
    console: Console
    token: dict[str, Any]
    relay_url: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer sk-{self.token['key']}"}

    async def post(self, path: str, body: object, **headers: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.relay_url, timeout=30) as client:
            return await client.post(path, json=body, headers={**self.headers, **headers})

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.relay_url, timeout=30) as client:
            return await client.get(path, headers=self.headers)

    async def balances(self) -> tuple[int, int]:
        """(the user's quota, the key's remaining budget)."""
        user = await self.console.call("GET", "/api/user/self")
        token = await self.console.call("GET", f"/api/token/{self.token['id']}")
        return int(user["quota"]), int(token["remain_quota"])

    async def logs(self) -> list[dict[str, Any]]:
        page = await self.console.call("GET", "/api/log/self", params={"p": 1, "page_size": 50})
        items: list[dict[str, Any]] = page["items"]
        return items


async def _drawer(world: World, fake: FakeTaskUpstream) -> Drawer:
    await set_model_price(world.root, "mj_imagine", MJ_PRICE_USD)
    await set_model_price(world.root, "suno_music", SUNO_PRICE_USD)
    await create_channel(
        world.root, base_url=fake.url, models=["mj_imagine", "mj_upscale"], type=2, key=fake.key
    )
    await create_channel(
        world.root, base_url=fake.url, models=["suno_music"], type=36, key=fake.key
    )
    console, _user_id = await create_user(world.root, quota=1_000_000)
    world.consoles.append(console)
    token = await create_token(console, unlimited_quota=False, remain_quota=BUDGET)
    await wait_for_model(world.relay_url, token["key"], "mj_imagine")
    await wait_for_model(world.relay_url, token["key"], "suno_music")
    return Drawer(console=console, token=token, relay_url=world.relay_url)


async def _finished(drawer: Drawer, path: str, done: tuple[str, ...]) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        reply = await drawer.get(path)
        if reply.status_code == 404:
            return None  # the tasks service stores an accepted task a moment after the answer
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        view = body.get("data", body) if "code" in body and "data" in body else body
        return body if view.get("status") in done else None

    return await eventually(probe, within=30)


async def _back_to(drawer: Drawer, balances: tuple[int, int]) -> None:
    """The balances settle at these (holds of refused submits are released after the reply)."""

    async def probe() -> bool | None:
        return True if await drawer.balances() == balances else None

    await eventually(probe)


SUNO_PRICE_USD = 0.04
