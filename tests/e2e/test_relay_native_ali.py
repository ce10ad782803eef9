"""End to end: Ali DashScope (type 17) image generation with the wanx models, which DashScope
runs as async tasks: the relay submits the task, polls it to the end, answers with the result
URLs in OpenAI's shape and charges per image; a task DashScope fails costs nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import openai
import pytest

from tests.fakes.dashscope_upstream import FakeDashScope
from tests.support.relay_kit import (
    IMAGE_PRICE,
    QUOTA_PER_UNIT,
    charged_once,
    customer_on,
    set_model_price,
)
from tests.support.relay_kit import world as world
from tests.support.world import Customer, World, eventually, sdk, wallet

pytestmark = pytest.mark.e2e
ALI = 17


@pytest.fixture(scope="module")
def dashscope() -> Iterator[FakeDashScope]:
    with FakeDashScope() as fake:
        yield fake


async def on_ali(world: World, fake: FakeDashScope) -> Customer:
    model = f"wanx-v1-{uuid.uuid4().hex[:6]}"
    customer = await customer_on(world, model, base_url=fake.url, type_=ALI, key="sk-dash")
    await set_model_price(world.root, model, IMAGE_PRICE)
    return customer


async def test_a_wanx_image_is_a_polled_task_charged_per_image(
    world: World, dashscope: FakeDashScope
) -> None:
    customer = await on_ali(world, dashscope)
    before = await wallet(customer)
    polls = dashscope.polls

    answer = await sdk(world, customer.key).images.generate(
        model=customer.model, prompt="a red panda", n=2, size="1024x1024"
    )

    assert answer.data is not None
    urls = [item.url or "" for item in answer.data]
    assert len(urls) == 2 and all(url.startswith("https://dashscope-result.test/") for url in urls)
    submitted = [r for r in dashscope.requests if r.path.endswith("image-synthesis")][-1]
    assert submitted.headers["x-dashscope-async"] == "enable"
    assert submitted.body == {
        "model": customer.model,
        "input": {"prompt": "a red panda"},
        "parameters": {"n": 2, "size": "1024*1024"},
    }
    assert dashscope.polls - polls == 2  # RUNNING, then SUCCEEDED
    log = await charged_once(customer, before)
    assert log["quota"] == round(IMAGE_PRICE * QUOTA_PER_UNIT * 2)


async def test_a_task_dashscope_fails_costs_nothing(world: World, dashscope: FakeDashScope) -> None:
    customer = await on_ali(world, dashscope)
    before = await wallet(customer)

    with pytest.raises(openai.BadRequestError) as refused:
        await sdk(world, customer.key).images.generate(model=customer.model, prompt="forbidden")

    assert "inappropriate content" in refused.value.message

    async def released() -> bool | None:  # an image's hold is a reserve, released after
        return True if (await wallet(customer))["quota"] == before["quota"] else None

    assert await eventually(released)
