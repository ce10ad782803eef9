"""The tasks worker: a durable JetStream pull loop over the TASKS stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import asyncpg
import nats.errors
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from veloera.tasks.v1 import tasks_pb2

from services.shared import nats_auth, subjects
from services.shared.db import create_pool
from services.shared.metrics import observe_consumed, observe_idle
from services.shared.natsutil import connect, drain, ensure_streams
from services.tasks import channel_jobs, handlers, health
from services.tasks.metrics import MESSAGES, UP
from services.tasks.settings import Settings

logger = logging.getLogger(__name__)

_ACK_WAIT_SECONDS = 60.0
_RETRY_DELAY_SECONDS = 5.0
_DRAIN_SECONDS = 5.0


async def handle(msg: Msg, pool: asyncpg.Pool) -> None:
    """Ack after the work is committed; nak with a delay on a transient failure; term poison."""
    try:
        event = tasks_pb2.TaskSubmitted.FromString(msg.data)
    except DecodeError:
        logger.error("undecodable task message on %s; terminating it", msg.subject)
        await msg.term()
        MESSAGES.labels("poison").inc()
        return
    try:
        async with pool.acquire() as conn:
            await handlers.record_submitted(conn, event=event)
    except (OSError, asyncpg.PostgresError):
        logger.warning("task %s not stored; will retry", event.request_id, exc_info=True)
        await msg.nak(delay=_RETRY_DELAY_SECONDS)
        MESSAGES.labels("retry").inc()
        return
    await msg.ack()
    MESSAGES.labels("ok").inc()


async def pull_loop(js: JetStreamContext, pool: asyncpg.Pool, settings: Settings) -> None:
    subscription = await js.pull_subscribe(
        subjects.TASK_SUBMITTED_SUBJECT,
        durable=subjects.TASKS_DURABLE,
        stream=subjects.TASKS_STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=_ACK_WAIT_SECONDS),
    )
    UP.set(1)
    try:
        while True:
            try:
                batch = await subscription.fetch(
                    settings.fetch_batch, timeout=settings.fetch_timeout
                )
            except (TimeoutError, nats.errors.TimeoutError):
                # An empty fetch means idle; nats-py raises a plain TimeoutError from a batch
                # fetch that got nothing, which used to end this loop silently.
                observe_idle(subjects.TASKS_DURABLE)
                continue
            except nats.errors.Error:
                # NATS restarting or the connection reconnecting: the durable consumer keeps
                # our place, so wait and fetch again (the loop must outlive any outage).
                logger.warning("task fetch failed; retrying", exc_info=True)
                await asyncio.sleep(_RETRY_DELAY_SECONDS)
                continue
            for msg in batch:
                observe_consumed(subjects.TASKS_DURABLE, msg)
                try:
                    await handle(msg, pool)
                except nats.errors.Error:
                    # The ack or nak did not reach NATS: the message is redelivered after
                    # ack_wait, and storing it again is idempotent.
                    logger.warning("task message not acknowledged; it will be redelivered")
    finally:
        UP.set(0)
        # Unsubscribe before the connection drains: a pull subscription cancelled mid-fetch
        # otherwise keeps drain waiting for its pending request.
        with contextlib.suppress(nats.errors.Error):
            await subscription.unsubscribe()


async def run(settings: Settings) -> None:
    pool = await create_pool(settings.database_url.value, schema="tasks", min_size=1, max_size=5)
    nc = await connect(
        settings.nats_url,
        name="veloera-tasks",
        user=nats_auth.TASKS,
        password=settings.nats_password,
    )
    js = nc.jetstream()
    await ensure_streams(js)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker = asyncio.create_task(pull_loop(js, pool, settings)) if settings.update_task else None

    async def readiness() -> list[str]:
        missing = [] if nc.is_connected else ["nats"]
        if not await health.database_answers(pool):
            missing.append("postgresql")
        if worker is not None and worker.done():
            missing.append("pull loop")
        return missing

    def alive() -> bool:
        return worker is None or not worker.done()

    probes = await health.serve(readiness, alive, settings.bind_host, settings.metrics_port)
    logger.info("tasks worker started", extra={"polling": settings.update_task})
    async with channel_jobs.running(settings):
        await stop.wait()
    if worker is not None:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    await probes.cleanup()
    await drain(nc)
    await asyncio.wait_for(pool.close(), timeout=_DRAIN_SECONDS)
    logger.info("tasks worker stopped")
