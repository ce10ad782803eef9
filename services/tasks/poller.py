"""The poller: asks upstreams about unfinished tasks (through the relay, which holds the channel
keys), records what they say, fails tasks past the timeout and refunds failed ones through
billing (upstream `controller/midjourney.go: UpdateMidjourneyTaskBulk`, `controller/task.go:
UpdateTaskBulk`: every 15 s, tasks older than an hour fail).

Several replicas may poll: each cycle claims due tasks under a lease (store.claim_due), so a
task is polled by one replica at a time and a replica killed mid-poll leaves its tasks to
another once the lease ends. A failure's refund is marked due in the same write that records
the failure, then published to billing's work queue (JetStream, acknowledged) and marked
published; a replica killed in between publishes it again, and billing applies it once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass

import asyncpg
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from veloera.accounts.v1 import events_pb2 as accounts_events
from veloera.tasks.v1 import tasks_pb2

from services.shared import subjects
from services.tasks import platforms, store
from services.tasks.metrics import POLLS, REFUNDS

logger = logging.getLogger(__name__)
_PLATFORM_NAMES = {
    tasks_pb2.PLATFORM_MIDJOURNEY: "Midjourney",
    tasks_pb2.PLATFORM_SUNO: "Suno",
    tasks_pb2.PLATFORM_VIDEO: "video",
}

_MAX_BACKOFF_SECONDS = 300.0
_POLLED = (tasks_pb2.PLATFORM_MIDJOURNEY, tasks_pb2.PLATFORM_SUNO, tasks_pb2.PLATFORM_VIDEO)
_TRANSIENT = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True, slots=True)
class PollConfig:
    interval: float  # seconds between polls of one task (upstream: 15)
    lease: float  # seconds a claimed task is this replica's
    batch: int  # tasks claimed per cycle
    request_timeout: float  # the relay's answer to one poll request
    task_timeout: float  # an unfinished task older than this fails (upstream: 1 hour)


class Poller:
    def __init__(
        self, pool: asyncpg.Pool, nc: NATS, js: JetStreamContext, config: PollConfig
    ) -> None:
        self._pool = pool
        self._nc = nc
        self._js = js
        self._config = config

    async def run(self) -> None:
        """Poll until cancelled; a failed cycle is logged and the next one runs."""
        while True:
            try:
                busy = await self.cycle()
            except _TRANSIENT:
                logger.warning("task poll cycle failed; retrying", exc_info=True)
                busy = False
            except Exception:  # a bug must not stop polling for every task
                logger.exception("task poll cycle failed unexpectedly")
                busy = False
            if not busy:
                await asyncio.sleep(min(self._config.interval, 1.0))

    async def cycle(self) -> bool:
        """Claim the due tasks and handle them; True when some were due."""
        async with self._pool.acquire() as conn:
            claimed = await store.claim_due(
                conn, lease_seconds=self._config.lease, limit=self._config.batch
            )
        if not claimed:
            return False
        groups: dict[tuple[int, int], list[store.TaskRecord]] = defaultdict(list)
        for task in claimed:
            if task.refund_state == store.REFUND_DUE:
                await self._refund(task)
            elif self._timed_out(task):
                await self._fail(task, "upstream task timed out")
            elif task.platform not in _POLLED or not task.upstream_task_id:
                await self._fail(task, "task has no upstream to poll")
            else:
                groups[(task.platform, task.channel_id)].append(task)
        for (platform, channel_id), tasks in groups.items():
            await self._poll(platform, channel_id, tasks)
        return True

    def _timed_out(self, task: store.TaskRecord) -> bool:
        submitted = task.submit_time
        return bool(submitted) and time.time() - submitted > self._config.task_timeout

    async def _poll(self, platform: int, channel_id: int, tasks: list[store.TaskRecord]) -> None:
        request = tasks_pb2.PollTasksRequest(
            platform=platform,  # type: ignore[arg-type]
            channel_id=channel_id,
            upstream_task_ids=[task.upstream_task_id for task in tasks],
        )
        try:
            reply = await self._nc.request(
                subjects.TASK_POLL,
                request.SerializeToString(),
                timeout=self._config.request_timeout,
            )
            answer = tasks_pb2.PollTasksResponse.FromString(reply.data)
        except (nats.errors.Error, TimeoutError) as exc:
            POLLS.labels("unreachable").inc()
            logger.warning("task poll of channel %d not answered: %s", channel_id, exc)
            await self._back_off(tasks)
            return
        if answer.channel_gone:
            # Disabled for now (auto-disabled, an admin's pause) or deleted: the task may still
            # finish upstream once the channel is back; TASK_TIMEOUT fails it otherwise.
            POLLS.labels("channel_gone").inc()
            await self._back_off(tasks)
            return
        if answer.error:
            POLLS.labels("upstream_error").inc()
            logger.warning("task poll of channel %d failed: %s", channel_id, answer.error)
            await self._back_off(tasks)
            return
        try:
            updates = platforms.parse(platform, answer.body)
        except platforms.BadAnswer as exc:
            POLLS.labels("bad_answer").inc()
            logger.warning("task poll of channel %d answered oddly: %s", channel_id, exc)
            await self._back_off(tasks)
            return
        POLLS.labels("ok").inc()
        for task in tasks:
            update = updates.get(task.upstream_task_id)
            if update is None:
                await self._back_off([task])
            else:
                await self._record(task, update)

    async def _record(self, task: store.TaskRecord, update: store.Update) -> None:
        async with self._pool.acquire() as conn:
            refund_due = await store.record(conn, task, update, next_in=self._config.interval)
        if refund_due:
            await self._refund(task, reason=update.fail_reason)

    async def _fail(self, task: store.TaskRecord, reason: str) -> None:
        update = store.Update(
            status=tasks_pb2.TASK_STATUS_FAILURE,
            progress="100%",
            fail_reason=reason,
            data=task.data or "{}",
            start_time=task.start_time,
            finish_time=int(time.time()),
        )
        await self._record(task, update)

    async def _back_off(self, tasks: list[store.TaskRecord]) -> None:
        async with self._pool.acquire() as conn:
            for task in tasks:
                backoff = self._config.interval * 2**task.poll_failures
                delay = min(backoff, _MAX_BACKOFF_SECONDS)
                await store.back_off(conn, task.id, delay=delay)

    async def _refund(self, task: store.TaskRecord, reason: str = "") -> None:
        """Publish the refund (JetStream acknowledges it), then mark it published; a refund not
        published stays due, and the next cycle (here or in another replica) publishes it."""
        refund = tasks_pb2.TaskRefund(
            request_id=task.request_id,
            user_id=task.user_id,
            token_id=task.token_id,
            quota=task.quota,
            platform=task.platform,
            upstream_task_id=task.upstream_task_id,
            reason=reason or task.fail_reason,
            model_name=task.model_name,
        )
        try:
            await self._js.publish(subjects.TASK_REFUNDS_SUBJECT, refund.SerializeToString())
        except (nats.errors.Error, TimeoutError):
            REFUNDS.labels("retry").inc()
            logger.warning("refund of task %s not published; will retry", task.request_id)
            async with self._pool.acquire() as conn:
                await store.back_off(conn, task.id, delay=self._config.interval)
            return
        async with self._pool.acquire() as conn:
            await store.mark_refunded(conn, task.id)
        REFUNDS.labels("published").inc()
        await self._notify_failure(task, refund.reason)

    async def _notify_failure(self, task: store.TaskRecord, reason: str) -> None:
        """Tell the user (email or webhook, as their settings say; accounts delivers it) that
        the task failed and its charge came back. Best effort: a lost notice costs nothing,
        and JetStream drops a second copy of the same task's notice."""
        notice = accounts_events.UserNotification(
            user_id=task.user_id,
            type="task_failed",
            title="A task failed and was refunded",
            content="Your {{value}} task {{value}} failed ({{value}}); its charge was refunded.",
            values=[
                _PLATFORM_NAMES.get(task.platform, "async"),
                task.upstream_task_id,
                reason or "unknown reason",
            ],
            occur_time=int(time.time()),
        )
        try:
            await self._js.publish(
                subjects.USER_NOTIFICATION_SUBJECT,
                notice.SerializeToString(),
                headers={"Nats-Msg-Id": f"task-failed:{task.request_id}"},
            )
        except (nats.errors.Error, TimeoutError):
            logger.warning("failure notice of task %s not published", task.request_id)
