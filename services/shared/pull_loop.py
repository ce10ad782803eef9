"""One durable JetStream pull loop for every consumer (billing's settlements, the tasks worker).

A handler decides what happens to each message (`Ack`, `Nak` with a delay, `Term`); the loop
does the acknowledging, keeps a slow handler's message from being redelivered (`in_progress`
every third of ack_wait), and outlives everything that is not a cancel: an idle fetch (nats-py
raises a plain `TimeoutError` from a batch fetch that got nothing, which once killed both loops
here), a NATS outage (the durable consumer keeps our place; fetch again after a pause), an ack
that never reached NATS (the message is redelivered after ack_wait, so handlers are idempotent)
and a handler bug (logged, the message naked for a later attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client import Gauge

from services.shared.metrics import observe_consumed, observe_idle

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ack:
    """Done (or already done): the message leaves the stream."""


@dataclass(frozen=True, slots=True)
class Nak:
    """Not now (a transient failure, or a job to look at again later): redeliver after delay."""

    delay: float


@dataclass(frozen=True, slots=True)
class Term:
    """Never applicable (poison): stop redelivering it."""


Outcome = Ack | Nak | Term
Handler = Callable[[Msg], Awaitable[Outcome]]

ACK = Ack()
TERM = Term()


@dataclass(frozen=True, slots=True)
class Consumer:
    """Where to pull from and how: one durable consumer shared by every replica."""

    stream: str
    durable: str
    batch: int = 16
    fetch_timeout: float = 5.0
    ack_wait: float = 60.0
    retry_delay: float = 5.0
    # Only these subjects of the stream (None: all of them).
    filter_subject: str | None = None
    # A handler that raised: its message is naked with this delay (a bug is not fixed in 5s).
    error_delay: float = 30.0


async def subscribe(js: JetStreamContext, consumer: Consumer) -> JetStreamContext.PullSubscription:
    """Create (or find) the durable consumer and bind a pull subscription to it."""
    await js.add_consumer(
        consumer.stream,
        config=ConsumerConfig(
            durable_name=consumer.durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=consumer.ack_wait,
            filter_subject=consumer.filter_subject,
        ),
    )
    return await js.pull_subscribe_bind(durable=consumer.durable, stream=consumer.stream)


async def run(
    js: JetStreamContext, consumer: Consumer, handler: Handler, *, up: Gauge | None = None
) -> None:
    """Pull and handle until cancelled; `up` is set to 1 while the loop runs."""
    subscription = await subscribe(js, consumer)
    if up is not None:
        up.set(1)
    me = asyncio.current_task()
    try:
        while True:
            messages = await _fetch(subscription, consumer)
            if me is not None and me.cancelling():
                # Python 3.11's wait_for (inside nats-py's fetch) can turn a cancellation that
                # meets a fetch timeout into a TimeoutError; the task still knows it was asked
                # to stop, so stop here instead of fetching forever (a hung shutdown).
                raise asyncio.CancelledError
            for msg in messages:
                observe_consumed(consumer.durable, msg)
                await _handle(msg, consumer, handler)
    finally:
        if up is not None:
            up.set(0)
        # Unsubscribe before the connection drains: a pull subscription cancelled mid-fetch
        # otherwise keeps drain waiting for its pending request.
        with contextlib.suppress(nats.errors.Error):
            await subscription.unsubscribe()


async def _fetch(subscription: JetStreamContext.PullSubscription, consumer: Consumer) -> list[Msg]:
    """One batch, or none when idle or NATS is away (after a pause, so an outage is no spin)."""
    try:
        return await subscription.fetch(consumer.batch, timeout=consumer.fetch_timeout)
    except (TimeoutError, nats.errors.TimeoutError):
        observe_idle(consumer.durable)
        return []
    except nats.errors.Error:
        logger.warning("fetch from %s failed; retrying", consumer.durable, exc_info=True)
        await asyncio.sleep(consumer.retry_delay)
        return []


async def _handle(msg: Msg, consumer: Consumer, handler: Handler) -> None:
    heartbeat = asyncio.create_task(_keep_alive(msg, consumer.ack_wait / 3))
    try:
        outcome: Outcome = await handler(msg)
    except Exception:  # a bug must not stop the loop; the message stays for a later attempt
        logger.exception("handler of %s failed on %s; will retry", consumer.durable, msg.subject)
        outcome = Nak(consumer.error_delay)
    finally:
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
    try:
        await _settle(msg, outcome)
    except nats.errors.Error:
        # The ack did not reach NATS: the message is redelivered after ack_wait.
        logger.warning("message on %s not acknowledged; it will be redelivered", msg.subject)


async def _settle(msg: Msg, outcome: Outcome) -> None:
    match outcome:
        case Ack():
            await msg.ack()
        case Nak(delay=delay):
            await msg.nak(delay=delay)
        case Term():
            await msg.term()


async def _keep_alive(msg: Msg, every: float) -> None:
    """Tell NATS a slow handler is still working, so the message is not handed to another."""
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(nats.errors.Error):
            await msg.in_progress()
