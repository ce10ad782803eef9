"""The tasks worker: a durable JetStream pull loop storing submitted tasks, the poller that
follows them upstream (poller.py), and the TASKS_FETCH responder (fetch.py)."""

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
from veloera.tasks.v1 import tasks_pb2

from services.shared import nats_auth, pull_loop, subjects
from services.shared.db import create_pool
from services.shared.natsutil import connect, drain, ensure_streams
from services.tasks import channel_jobs, fetch, handlers, health
from services.tasks.metrics import MESSAGES, UP
from services.tasks.poller import PollConfig, Poller
from services.tasks.settings import Settings

logger = logging.getLogger(__name__)

_ACK_WAIT_SECONDS = 60.0
_RETRY_DELAY_SECONDS = 5.0
_DRAIN_SECONDS = 5.0


async def handle(msg: Msg, pool: asyncpg.Pool) -> pull_loop.Outcome:
    """Ack after the row is committed; nak with a delay on a transient failure; term poison."""
    try:
        event = tasks_pb2.TaskSubmitted.FromString(msg.data)
    except DecodeError:
        logger.error("undecodable task message on %s; terminating it", msg.subject)
        MESSAGES.labels("poison").inc()
        return pull_loop.TERM
    try:
        async with pool.acquire() as conn:
            await handlers.record_submitted(conn, event=event)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        logger.warning("task %s not stored; will retry", event.request_id, exc_info=True)
        MESSAGES.labels("retry").inc()
        return pull_loop.Nak(_RETRY_DELAY_SECONDS)
    MESSAGES.labels("ok").inc()
    return pull_loop.ACK


def consumer(settings: Settings) -> pull_loop.Consumer:
    """The durable consumer of submitted jobs shared by every tasks replica."""
    return pull_loop.Consumer(
        stream=subjects.TASKS_STREAM,
        durable=subjects.TASKS_DURABLE,
        filter_subject=subjects.TASK_SUBMITTED_SUBJECT,
        batch=settings.fetch_batch,
        fetch_timeout=settings.fetch_timeout,
        ack_wait=_ACK_WAIT_SECONDS,
        retry_delay=_RETRY_DELAY_SECONDS,
    )


async def consume(js: JetStreamContext, pool: asyncpg.Pool, settings: Settings) -> None:
    async def handler(msg: Msg) -> pull_loop.Outcome:
        return await handle(msg, pool)

    await pull_loop.run(js, consumer(settings), handler, up=UP)


def poll_config(settings: Settings) -> PollConfig:
    return PollConfig(
        interval=settings.poll_interval,
        lease=settings.poll_lease,
        batch=settings.poll_batch,
        request_timeout=settings.poll_request_timeout,
        task_timeout=settings.task_timeout,
    )


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
    fetches = await fetch.serve(nc, pool)
    loops = (
        [
            asyncio.create_task(consume(js, pool, settings)),
            asyncio.create_task(Poller(pool, nc, js, poll_config(settings)).run()),
        ]
        if settings.update_task
        else []
    )

    async def readiness() -> list[str]:
        missing = [] if nc.is_connected else ["nats"]
        if not await health.database_answers(pool):
            missing.append("postgresql")
        if any(task.done() for task in loops):
            missing.append("pull loop")
        return missing

    def alive() -> bool:
        return not any(task.done() for task in loops)

    probes = await health.serve(readiness, alive, settings.bind_host, settings.metrics_port)
    logger.info("tasks worker started", extra={"polling": settings.update_task})
    async with channel_jobs.running(settings, nc):
        await stop.wait()
    for task in loops:
        task.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    with contextlib.suppress(nats.errors.Error):
        await fetches.unsubscribe()
    await probes.cleanup()
    await drain(nc)
    await asyncio.wait_for(pool.close(), timeout=_DRAIN_SECONDS)
    logger.info("tasks worker stopped")
