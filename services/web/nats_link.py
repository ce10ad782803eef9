"""The console's NATS connection: task state from the tasks service (TASKS_FETCH) and channel
probes from the relays (CHANNEL_PROBE, services/shared/channel_probes.py), both request/reply.

The connection is optional (NATS_URL unset: no task logs, no channel tests) and made in the
background, so the console starts and serves everything else while NATS is away; until it
connects, task logs answer that task state is unavailable, /api/status reports drawing and tasks
as off, and channel tests say that the relays cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats.errors
from nats.aio.client import Client as NATS
from veloera.tasks.v1 import tasks_pb2

from services.shared import nats_auth, subjects
from services.shared.natsutil import connect, drain
from services.web.settings import Settings

logger = logging.getLogger(__name__)

_RETRY_SECONDS = 5.0


class TaskStateUnavailable(Exception):
    """Task state cannot be read now (no NATS, no tasks replica answering, its store down)."""


class NatsLink:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._nc: NATS | None = None
        self._connecting: asyncio.Task[None] | None = None

    @property
    def configured(self) -> bool:
        return bool(self._settings.nats_url)

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def connection(self) -> NATS | None:
        return self._nc

    def start(self) -> None:
        if self.configured:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        while True:
            try:
                self._nc = await connect(
                    self._settings.nats_url,
                    name="veloera-web",
                    user=nats_auth.WEB,
                    password=self._settings.nats_password,
                )
                return
            except (OSError, TimeoutError, nats.errors.Error) as exc:
                logger.warning("NATS not reachable (%s); task logs and channel tests wait", exc)
                await asyncio.sleep(_RETRY_SECONDS)

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._nc is not None:
            await drain(self._nc)

    async def fetch(self, request: tasks_pb2.FetchTasksRequest) -> tasks_pb2.FetchTasksResponse:
        if self._nc is None or not self._nc.is_connected:
            raise TaskStateUnavailable("task state is unavailable: NATS is not connected")
        try:
            reply = await self._nc.request(
                subjects.TASKS_FETCH,
                request.SerializeToString(),
                timeout=self._settings.tasks_fetch_timeout,
            )
        except (nats.errors.Error, TimeoutError):
            raise TaskStateUnavailable(
                "task state is unavailable: no tasks service answered"
            ) from None
        answer = tasks_pb2.FetchTasksResponse.FromString(reply.data)
        if answer.error:
            raise TaskStateUnavailable(f"task state is unavailable: {answer.error}")
        return answer
