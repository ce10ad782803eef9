"""Handlers for JetStream task messages; idempotent, because redelivery happens."""

from __future__ import annotations

from veloera.tasks.v1 import tasks_pb2

from services.shared.db import Connection

INSERT_TASK = """
INSERT INTO tasks (request_id, platform, upstream_task_id, action, status, user_id, token_id,
                   channel_id, quota, model_name, properties, submit_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12)
ON CONFLICT (request_id) DO NOTHING
"""


async def record_submitted(conn: Connection, *, event: tasks_pb2.TaskSubmitted) -> bool:
    """Store a submitted job for polling; returns False when it was already stored."""
    status = await conn.execute(
        INSERT_TASK,
        event.request_id,
        event.platform,
        event.upstream_task_id,
        event.action,
        tasks_pb2.TASK_STATUS_SUBMITTED,
        event.user_id,
        event.token_id,
        event.channel_id,
        event.quota,
        event.model_name,
        event.properties or "{}",
        event.submit_time,
    )
    return bool(status.endswith(" 1"))
