"""The shared pull loop stops when cancelled even when the cancellation reaches it as a fetch
timeout (Python 3.11's wait_for, inside nats-py's fetch, can turn one into the other): before,
the loop fetched on and a service's shutdown, or a test's teardown, hung."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nats.aio.msg import Msg

from services.shared import pull_loop


class SwallowingSubscription:
    """A pull subscription whose fetch answers a cancellation with a timeout."""

    def __init__(self) -> None:
        self.fetches = 0
        self.fetching = asyncio.Event()

    async def fetch(self, batch: int, timeout: float) -> list[Msg]:
        self.fetches += 1
        self.fetching.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise TimeoutError from None
        return []

    async def unsubscribe(self) -> None:
        return None


async def test_a_cancel_swallowed_by_a_fetch_still_stops_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subscription = SwallowingSubscription()

    async def subscribe(js: Any, consumer: pull_loop.Consumer) -> SwallowingSubscription:
        return subscription

    async def handler(msg: Msg) -> pull_loop.Outcome:
        return pull_loop.ACK

    monkeypatch.setattr(pull_loop, "subscribe", subscribe)
    loop = asyncio.create_task(
        pull_loop.run(None, pull_loop.Consumer(stream="S", durable="d"), handler)  # type: ignore[arg-type]
    )
    await subscription.fetching.wait()
    loop.cancel()
    done, _ = await asyncio.wait({loop}, timeout=10)  # a guard against a hang, not a timing
    assert loop in done and loop.cancelled()
    assert subscription.fetches == 1
