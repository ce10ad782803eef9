"""The tasks schema's queries: claiming due tasks under a lease, recording what the upstream
said, and the reads behind TASKS_FETCH.

A task is polled by one replica at a time: `claim_due` takes due rows with `FOR UPDATE SKIP
LOCKED` and stamps a lease; another replica skips them until the lease ends, so a replica
killed mid-poll only delays its tasks by the lease.
"""

from __future__ import annotations

from dataclasses import dataclass

from veloera.tasks.v1 import tasks_pb2

from services.shared.db import Connection, Row, Where

FINISHED = (tasks_pb2.TASK_STATUS_FAILURE, tasks_pb2.TASK_STATUS_SUCCESS)
REFUND_NONE, REFUND_DUE, REFUND_PUBLISHED = 0, 1, 2

_COLUMNS = (
    "id, request_id, platform, upstream_task_id, action, status, progress, fail_reason,"
    " user_id, token_id, channel_id, quota, model_name, properties::text AS properties,"
    " data::text AS data, submit_time, start_time, finish_time, refund_state, poll_failures"
)
CLAIM_DUE = f"""
UPDATE tasks SET lease_until = now() + make_interval(secs => $1)
WHERE id IN (
    SELECT id FROM tasks
    WHERE (status NOT IN (5, 6) OR refund_state = 1)
      AND next_poll_at <= now()
      AND (lease_until IS NULL OR lease_until < now())
    ORDER BY next_poll_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING {_COLUMNS}
"""
RECORD = """
UPDATE tasks SET status = $2, progress = $3, fail_reason = $4, data = $5::jsonb,
       start_time = $6, finish_time = $7, refund_state = $8,
       next_poll_at = now() + make_interval(secs => $9), poll_failures = 0,
       lease_until = NULL, updated_at = now()
WHERE id = $1
"""
BACK_OFF = """
UPDATE tasks SET poll_failures = poll_failures + 1, lease_until = NULL,
       next_poll_at = now() + make_interval(secs => $2)
WHERE id = $1
RETURNING poll_failures
"""
REFUNDED = """
UPDATE tasks SET refund_state = 2, lease_until = NULL, updated_at = now() WHERE id = $1
"""


@dataclass(frozen=True, slots=True)
class TaskRecord(Row):
    """A `tasks` row (`_COLUMNS`); properties and data are JSON text."""

    id: int
    request_id: str
    platform: tasks_pb2.Platform.ValueType
    upstream_task_id: str
    action: str
    status: tasks_pb2.TaskStatus.ValueType
    progress: str
    fail_reason: str
    user_id: int
    token_id: int
    channel_id: int
    quota: int
    model_name: str
    properties: str
    data: str
    submit_time: int
    start_time: int
    finish_time: int
    refund_state: int
    poll_failures: int


@dataclass(frozen=True, slots=True)
class Update:
    """What one poll learned about a task."""

    status: int
    progress: str
    fail_reason: str
    data: str  # JSON
    start_time: int
    finish_time: int


async def claim_due(conn: Connection, *, lease_seconds: float, limit: int) -> list[TaskRecord]:
    return [TaskRecord.of(row) for row in await conn.fetch(CLAIM_DUE, lease_seconds, limit)]


async def record(conn: Connection, task: TaskRecord, update: Update, *, next_in: float) -> bool:
    """Store the update; True when this update made a charged task fail (a refund is due)."""
    refund_due = (
        update.status == tasks_pb2.TASK_STATUS_FAILURE
        and task.status != tasks_pb2.TASK_STATUS_FAILURE
        and task.quota > 0
        and task.refund_state == REFUND_NONE
    )
    refund_state = REFUND_DUE if refund_due else task.refund_state
    await conn.execute(
        RECORD,
        task.id,
        update.status,
        update.progress,
        update.fail_reason,
        update.data,
        update.start_time,
        update.finish_time,
        refund_state,
        next_in,
    )
    return refund_due


async def back_off(conn: Connection, task_id: int, *, delay: float) -> None:
    await conn.execute(BACK_OFF, task_id, delay)


async def mark_refunded(conn: Connection, task_id: int) -> None:
    await conn.execute(REFUNDED, task_id)


# ------------------------------------------------------------------ reads (TASKS_FETCH)

MAX_PAGE_SIZE = 100


def _filters(request: tasks_pb2.FetchTasksRequest) -> tuple[str, list[object]]:
    where = Where()
    add = where.add
    if request.user_id:
        add("user_id = {}", request.user_id)
    if request.platform:
        add("platform = {}", request.platform)
    if request.platforms:
        add("platform = ANY({}::smallint[])", list(request.platforms))
    if request.upstream_task_ids:
        add("upstream_task_id = ANY({}::text[])", list(request.upstream_task_ids))
    if request.action:
        add("action = {}", request.action)
    if request.status:
        add("status = {}", request.status)
    if request.channel_id:
        add("channel_id = {}", request.channel_id)
    if request.start_time:
        add("submit_time >= {}", request.start_time)
    if request.end_time:
        add("submit_time <= {}", request.end_time)
    return where.sql(), where.args


async def fetch(
    conn: Connection, request: tasks_pb2.FetchTasksRequest
) -> tuple[list[TaskRecord], int]:
    """One page of matching tasks, newest first, and how many match in all."""
    where, args = _filters(request)
    size = min(max(request.page_size, 1), MAX_PAGE_SIZE) if request.page_size else MAX_PAGE_SIZE
    page = max(request.page, 1)
    total = await conn.fetchval(f"SELECT count(*) FROM tasks{where}", *args)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM tasks{where} ORDER BY id DESC"
        f" LIMIT {size} OFFSET {(page - 1) * size}",
        *args,
    )
    return [TaskRecord.of(row) for row in rows], int(total)


def to_proto(row: TaskRecord) -> tasks_pb2.Task:
    return tasks_pb2.Task(
        id=row.id,
        platform=row.platform,
        upstream_task_id=row.upstream_task_id,
        action=row.action,
        status=row.status,
        progress=row.progress,
        fail_reason=row.fail_reason,
        user_id=row.user_id,
        token_id=row.token_id,
        channel_id=row.channel_id,
        quota=row.quota,
        model_name=row.model_name,
        properties=row.properties,
        data=row.data,
        submit_time=row.submit_time,
        start_time=row.start_time,
        finish_time=row.finish_time,
        refunded=row.refund_state == REFUND_PUBLISHED,
    )
