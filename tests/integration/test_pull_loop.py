"""The shared JetStream pull loop (services/shared/pull_loop.py) on a real NATS: it outlives idle
fetches and handler bugs, and each outcome does what it says (ack once, nak redelivers, term
drops, a slow handler keeps its message)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import nats
import pytest
from nats.aio.msg import Msg
from nats.js.api import RetentionPolicy, StreamConfig

from services.shared import pull_loop
from tests.support.infra import Infra
from tests.support.world import eventually

pytestmark = pytest.mark.integration


async def test_loop_outlives_idle_fetches_and_bugs_and_applies_each_outcome(infra: Infra) -> None:
    nc = await nats.connect(infra.nats_url)
    js = nc.jetstream()
    name = f"PULLTEST{uuid.uuid4().hex[:8]}".upper()
    subject = f"test.pull.{name.lower()}"
    await js.add_stream(
        StreamConfig(name=name, subjects=[subject], retention=RetentionPolicy.WORK_QUEUE)
    )
    seen: Counter[str] = Counter()
    done: list[str] = []

    async def handler(msg: Msg) -> pull_loop.Outcome:
        body = msg.data.decode()
        seen[body] += 1
        if body == "poison":
            return pull_loop.TERM
        if body == "later" and seen[body] == 1:
            return pull_loop.Nak(0.2)
        if body == "bug" and seen[body] == 1:
            raise RuntimeError("a handler bug")
        if body == "slow":
            await asyncio.sleep(2.5)  # longer than ack_wait: in_progress keeps it ours
        done.append(body)
        return pull_loop.ACK

    consumer = pull_loop.Consumer(
        stream=name,
        durable="pulltest",
        batch=4,
        fetch_timeout=0.2,
        ack_wait=1.5,
        retry_delay=0.2,
        error_delay=0.2,
    )
    loop = asyncio.create_task(pull_loop.run(js, consumer, handler))
    try:
        await asyncio.sleep(1.5)  # several empty fetches: each a plain TimeoutError in nats-py
        assert not loop.done()
        for body in ("ok", "poison", "later", "bug", "slow"):
            await js.publish(subject, body.encode())

        async def all_done() -> bool | None:
            return True if sorted(done) == ["bug", "later", "ok", "slow"] else None

        await eventually(all_done, within=20)
        await asyncio.sleep(2.0)  # anything wrongly left unacknowledged would come back now
        assert sorted(done) == ["bug", "later", "ok", "slow"]  # each applied once
        assert seen == Counter(ok=1, poison=1, later=2, bug=2, slow=1)
        assert (await js.stream_info(name)).state.messages == 0
        assert not loop.done()
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await js.delete_stream(name)
        await nc.close()
