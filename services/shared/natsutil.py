"""NATS connection and JetStream stream setup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import nats
import nats.errors
from google.protobuf.message import Message
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from services.shared import subjects
from services.shared.config import Secret

logger = logging.getLogger(__name__)

# Work-queue streams hand each message to exactly one consumer and delete it on ack;
# the events stream keeps a day of history for late subscribers.
_WORK_QUEUES = {subjects.SETTLEMENTS_STREAM, subjects.TASKS_STREAM}
_EVENTS_MAX_AGE_SECONDS = 24 * 3600.0


async def connect(url: str, *, name: str, user: str, password: Secret) -> NATS:
    """Connect as `user` (when `password` is set; see nats_auth) with unbounded reconnects; a
    broken connection never stops the service."""

    async def on_error(exc: Exception) -> None:
        logger.warning("nats error: %s", exc)

    async def on_disconnect() -> None:
        logger.warning("nats disconnected")

    async def on_reconnect() -> None:
        logger.info("nats reconnected")

    credentials = {"user": user, "password": password.value} if password.value else {}
    return await nats.connect(
        servers=[url],
        name=name,
        **credentials,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )


async def ensure_streams(js: JetStreamContext) -> None:
    """Create or update every stream in subjects.STREAMS (idempotent, safe from any service)."""
    for name, stream_subjects in subjects.STREAMS.items():
        work_queue = name in _WORK_QUEUES
        config = StreamConfig(
            name=name,
            subjects=stream_subjects,
            retention=RetentionPolicy.WORK_QUEUE if work_queue else RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=None if work_queue else _EVENTS_MAX_AGE_SECONDS,
        )
        try:
            await js.stream_info(name)
            await js.update_stream(config)
        except NotFoundError:
            await js.add_stream(config)


async def drain(nc: NATS, timeout: float = 5.0) -> None:
    """Drain (flush pending publishes, finish subscriptions), but never hang a shutdown."""
    try:
        await asyncio.wait_for(nc.drain(), timeout=timeout)
    except (TimeoutError, nats.errors.Error):
        logger.warning("NATS drain did not finish within %.0fs; closing", timeout)
        await nc.close()


async def serve_requests(
    nc: NATS, subject: str, queue: str, answer: Callable[[bytes], Awaitable[Message]]
) -> Subscription:
    """Answer each request on `subject` (one replica of the queue group) in its own task:
    nats-py runs a subscription's callbacks one after another, so one slow answer (an upstream,
    a query) would otherwise hold every request behind it. A requester that went away is
    ignored."""
    running: set[asyncio.Task[None]] = set()

    async def respond(msg: Msg) -> None:
        reply = await answer(msg.data)
        with contextlib.suppress(nats.errors.Error):
            await msg.respond(reply.SerializeToString())

    async def on_request(msg: Msg) -> None:
        task = asyncio.create_task(respond(msg))
        running.add(task)
        task.add_done_callback(running.discard)

    return await nc.subscribe(subject, queue=queue, cb=on_request)
