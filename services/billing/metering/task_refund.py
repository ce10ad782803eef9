"""Refund of a charged async task (Midjourney, Suno, video) that failed upstream.

Upstream `controller/midjourney.go` and `controller/task.go` give the task's quota back to the
user only; here the key's budget gets it back too, so a key limited to N units can be used for
N units of work that succeeded. Once per submit request id (the ledger's idempotency key): the
tasks service may publish the same refund twice (a replica killed after publishing, before
recording it), and the second does nothing.
"""

from __future__ import annotations

from veloera.tasks.v1 import tasks_pb2

from services.billing.context import Billing
from services.billing.metering import adjust
from services.billing.store import wallets
from services.shared.errors import InvalidArgument

_PLATFORMS = {
    tasks_pb2.PLATFORM_MIDJOURNEY: "构图失败",  # upstream's "image generation failed"
    tasks_pb2.PLATFORM_SUNO: "异步任务执行失败",  # upstream's "async task failed"
    tasks_pb2.PLATFORM_VIDEO: "异步任务执行失败",
}


def refund_key(request_id: str) -> str:
    return f"task-refund:{request_id}"


def _content(refund: tasks_pb2.TaskRefund) -> str:
    what = _PLATFORMS.get(refund.platform, "异步任务执行失败")
    reason = f"，原因：{refund.reason}" if refund.reason else ""
    return f"{what} {refund.upstream_task_id}{reason}，补偿 {refund.quota}"


async def refund_task(billing: Billing, refund: tasks_pb2.TaskRefund) -> bool:
    """Credit the user and the key; False when this task was already refunded."""
    if not refund.request_id or refund.user_id <= 0 or refund.quota <= 0:
        raise InvalidArgument("a task refund needs a request id, a user and a positive quota")
    change = adjust.Adjustment.credit(
        key=refund_key(refund.request_id),
        user_id=refund.user_id,
        quota=refund.quota,
        kind="refund",
        reason=f"task {refund.upstream_task_id} failed",
        log_content=_content(refund),
    )
    async with billing.pool.acquire() as conn, conn.transaction():
        applied = await adjust.adjust(conn, change=change)
        if applied and refund.token_id > 0:
            await wallets.credit_budget(conn, token_id=refund.token_id, amount=refund.quota)
    return applied
