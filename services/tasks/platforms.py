"""What each platform's upstream says about its tasks, as store.Update per upstream task id.

Midjourney: midjourney-proxy's `POST /mj/task/list-by-condition {"ids": [...]}` answers a list
of task objects (`status` NOT_START | SUBMITTED | MODAL | IN_PROGRESS | FAILURE | SUCCESS,
`progress` "42%", `failReason`, times in ms), as upstream `controller/midjourney.go` reads it.
Suno: `POST /suno/fetch {"ids": [...]}` answers `{"code": "success", "data": [...]}` with
`task_id`, `status`, `fail_reason`, `progress` and times in seconds (upstream
`relay/channel/task/suno`). Video: OpenAI's video objects, one per id, as a list (the relay
reads them one by one: task_poll.py).
"""

from __future__ import annotations

from typing import Any

import orjson
from veloera.tasks.v1 import tasks_pb2

from services.tasks.store import Update

_STATUS = {
    "NOT_START": tasks_pb2.TASK_STATUS_NOT_START,
    "SUBMITTED": tasks_pb2.TASK_STATUS_SUBMITTED,
    "MODAL": tasks_pb2.TASK_STATUS_SUBMITTED,
    "QUEUED": tasks_pb2.TASK_STATUS_QUEUED,
    "IN_PROGRESS": tasks_pb2.TASK_STATUS_IN_PROGRESS,
    "FAILURE": tasks_pb2.TASK_STATUS_FAILURE,
    "SUCCESS": tasks_pb2.TASK_STATUS_SUCCESS,
}


class BadAnswer(ValueError):
    """The upstream's answer is not what its platform sends: poll again later."""


def status_of(text: object) -> int:
    return _STATUS.get(str(text or "").upper(), tasks_pb2.TASK_STATUS_UNKNOWN)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _midjourney(item: dict[str, Any]) -> tuple[str, Update]:
    status = status_of(item.get("status"))
    fail_reason = _str(item.get("failReason"))
    if fail_reason and status != tasks_pb2.TASK_STATUS_SUCCESS:
        status = tasks_pb2.TASK_STATUS_FAILURE  # a fail reason before 100% is a failure
    progress = _str(item.get("progress"))
    if status in (tasks_pb2.TASK_STATUS_SUCCESS, tasks_pb2.TASK_STATUS_FAILURE):
        progress = "100%"
    update = Update(
        status=status,
        progress=progress,
        fail_reason=fail_reason,
        data=orjson.dumps(item).decode(),
        start_time=_int(item.get("startTime")) // 1000,
        finish_time=_int(item.get("finishTime")) // 1000,
    )
    return _str(item.get("id")), update


def _suno(item: dict[str, Any]) -> tuple[str, Update]:
    status = status_of(item.get("status"))
    progress = _str(item.get("progress"))
    if status in (tasks_pb2.TASK_STATUS_SUCCESS, tasks_pb2.TASK_STATUS_FAILURE):
        progress = "100%"
    update = Update(
        status=status,
        progress=progress,
        fail_reason=_str(item.get("fail_reason")),
        data=orjson.dumps(item.get("data")).decode(),
        start_time=_int(item.get("start_time")),
        finish_time=_int(item.get("finish_time")),
    )
    return _str(item.get("task_id")), update


_VIDEO_STATUS = {
    "queued": tasks_pb2.TASK_STATUS_QUEUED,
    "in_progress": tasks_pb2.TASK_STATUS_IN_PROGRESS,
    "completed": tasks_pb2.TASK_STATUS_SUCCESS,
    "failed": tasks_pb2.TASK_STATUS_FAILURE,
}


def _video(item: dict[str, Any]) -> tuple[str, Update]:
    """OpenAI's video object (`GET /v1/videos/{id}`): status queued | in_progress | completed
    | failed, progress 0-100, error.message, times in seconds."""
    status = _VIDEO_STATUS.get(_str(item.get("status")), tasks_pb2.TASK_STATUS_UNKNOWN)
    error = item.get("error")
    reason = _str(error.get("message")) if isinstance(error, dict) else ""
    if status == tasks_pb2.TASK_STATUS_FAILURE and not reason:
        reason = "video generation failed"
    progress = _int(item.get("progress"))
    if status in (tasks_pb2.TASK_STATUS_SUCCESS, tasks_pb2.TASK_STATUS_FAILURE):
        progress = 100
    update = Update(
        status=status,
        progress=f"{progress}%",
        fail_reason=reason,
        data=orjson.dumps(item).decode(),
        start_time=_int(item.get("created_at")),
        finish_time=_int(item.get("completed_at")),
    )
    return _str(item.get("id")), update


def parse(platform: int, body: str) -> dict[str, Update]:
    """Upstream task id -> update; raises BadAnswer when the body is not the platform's shape."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadAnswer("not JSON") from exc
    if platform == tasks_pb2.PLATFORM_SUNO:
        if not isinstance(answer, dict) or answer.get("code") != "success":
            raise BadAnswer("suno fetch did not succeed")
        items, read = answer.get("data"), _suno
    elif platform == tasks_pb2.PLATFORM_MIDJOURNEY:
        items, read = answer, _midjourney
    elif platform == tasks_pb2.PLATFORM_VIDEO:
        items, read = answer, _video
    else:
        raise BadAnswer(f"platform {platform} is not polled")
    if not isinstance(items, list):
        raise BadAnswer("no task list")
    updates: dict[str, Update] = {}
    for item in items:
        if isinstance(item, dict):
            task_id, update = read(item)
            if task_id:
                updates[task_id] = update
    return updates
