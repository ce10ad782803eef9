"""TASKS_FETCH: the relay's `/mj/task/{id}/fetch`, `/suno/fetch` and the console's task logs
read task state from here over NATS request/reply (the tasks schema is this service's own).
Every replica answers in one queue group; an answer that cannot be made says why in `error`."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription
from veloera.tasks.v1 import tasks_pb2

from services.shared import natsutil, subjects
from services.tasks import store
from services.tasks.metrics import FETCHES

logger = logging.getLogger(__name__)

QUEUE = "tasks-fetch"
ANSWER_SECONDS = 4.0  # within the askers' 5 s: a stuck database is an error, not a hang


async def answer(pool: asyncpg.Pool, data: bytes) -> tasks_pb2.FetchTasksResponse:
    try:
        request = tasks_pb2.FetchTasksRequest.FromString(data)
    except DecodeError:
        FETCHES.labels("bad_request").inc()
        return tasks_pb2.FetchTasksResponse(error="undecodable request")
    if request.page < 0 or request.page_size < 0:
        FETCHES.labels("bad_request").inc()
        return tasks_pb2.FetchTasksResponse(error="page and page_size must not be negative")
    try:
        async with asyncio.timeout(ANSWER_SECONDS), pool.acquire() as conn:
            rows, total = await store.fetch(conn, request)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        logger.warning("task fetch failed", exc_info=True)
        FETCHES.labels("error").inc()
        return tasks_pb2.FetchTasksResponse(error="task store unavailable")
    FETCHES.labels("ok").inc()
    return tasks_pb2.FetchTasksResponse(tasks=[store.to_proto(row) for row in rows], total=total)


async def serve(nc: NATS, pool: asyncpg.Pool) -> Subscription:
    return await natsutil.serve_requests(
        nc, subjects.TASKS_FETCH, QUEUE, lambda data: answer(pool, data)
    )
