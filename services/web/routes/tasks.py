"""Task and drawing logs (upstream `controller/midjourney.go`, `controller/task.go`): every
user's for admins (`/api/mj/`, `/api/task/`), one's own for users (`/self`), read from the
tasks service over NATS (TASKS_FETCH). Filters as upstream: drawing logs by `mj_id`, task logs
by `platform`, `task_id`, `status` and `action`; admins also by `channel_id`; both by
`start_timestamp` / `end_timestamp` (unix seconds, on the submit time)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.routing import Route
from veloera.tasks.v1 import tasks_pb2

from services.web.api import ROLE_ADMIN, ROLE_COMMON, ApiError, Call, bad_request, endpoint
from services.web.convert import paged
from services.web.nats_link import TaskStateUnavailable

_LAST_TIMESTAMP = 253_402_214_400
_PLATFORMS = {"suno": tasks_pb2.PLATFORM_SUNO, "video": tasks_pb2.PLATFORM_VIDEO}
_PLATFORM_NAMES = {value: name for name, value in _PLATFORMS.items()}
_STATUSES = {
    "NOT_START": tasks_pb2.TASK_STATUS_NOT_START,
    "SUBMITTED": tasks_pb2.TASK_STATUS_SUBMITTED,
    "QUEUED": tasks_pb2.TASK_STATUS_QUEUED,
    "IN_PROGRESS": tasks_pb2.TASK_STATUS_IN_PROGRESS,
    "FAILURE": tasks_pb2.TASK_STATUS_FAILURE,
    "SUCCESS": tasks_pb2.TASK_STATUS_SUCCESS,
    "UNKNOWN": tasks_pb2.TASK_STATUS_UNKNOWN,
}
_STATUS_NAMES = {value: name for name, value in _STATUSES.items()}
_MAX_TEXT = 200


def _text(call: Call, name: str) -> str:
    value = call.request.query_params.get(name, "").strip()
    if len(value) > _MAX_TEXT:
        raise bad_request(f"{name} is too long")
    return value


def _base(call: Call, *, user_id: int, admin_view: bool) -> tasks_pb2.FetchTasksRequest:
    page, size = call.page()
    start = call.query_int("start_timestamp", minimum=0, maximum=_LAST_TIMESTAMP)
    end = call.query_int("end_timestamp", minimum=0, maximum=_LAST_TIMESTAMP)
    return tasks_pb2.FetchTasksRequest(
        user_id=user_id,
        page=page,
        page_size=size,
        channel_id=call.query_int("channel_id", minimum=0) if admin_view else 0,
        start_time=start,
        end_time=end,
    )


async def _fetch(call: Call, request: tasks_pb2.FetchTasksRequest) -> tasks_pb2.FetchTasksResponse:
    try:
        return await call.deps.tasks.fetch(request)
    except TaskStateUnavailable as exc:
        raise ApiError(str(exc)) from None


def _json(text: str) -> Any:
    try:
        return orjson.loads(text or "null")
    except orjson.JSONDecodeError:
        return None


def _drawing(task: tasks_pb2.Task, admin_view: bool) -> dict[str, Any]:
    """One drawing log row, named as upstream's `midjourneys` table."""
    data = _json(task.data)
    data = data if isinstance(data, dict) else {}
    properties = _json(task.properties)
    properties = properties if isinstance(properties, dict) else {}
    item = {
        "id": task.id,
        "user_id": task.user_id,
        "action": task.action,
        "mj_id": task.upstream_task_id,
        "prompt": data.get("prompt") or properties.get("prompt", ""),
        "prompt_en": data.get("promptEn", ""),
        "description": data.get("description", ""),
        "state": data.get("state", ""),
        "submit_time": task.submit_time * 1000,
        "start_time": task.start_time * 1000,
        "finish_time": task.finish_time * 1000,
        "image_url": data.get("imageUrl", ""),
        "status": _STATUS_NAMES.get(task.status, "UNKNOWN"),
        "progress": task.progress or "0%",
        "fail_reason": task.fail_reason,
        "quota": task.quota,
        "refunded": task.refunded,
        "buttons": data.get("buttons", []),
        "properties": data.get("properties", {}),
    }
    if admin_view:
        item["channel_id"] = task.channel_id
    return item


def _task(task: tasks_pb2.Task, admin_view: bool) -> dict[str, Any]:
    """One task log row, named as upstream's `tasks` table."""
    item = {
        "id": task.id,
        "task_id": task.upstream_task_id,
        "platform": _PLATFORM_NAMES.get(task.platform, ""),
        "user_id": task.user_id,
        "quota": task.quota,
        "refunded": task.refunded,
        "action": task.action,
        "status": _STATUS_NAMES.get(task.status, "UNKNOWN"),
        "fail_reason": task.fail_reason,
        "submit_time": task.submit_time,
        "start_time": task.start_time,
        "finish_time": task.finish_time,
        "progress": task.progress or "0%",
        "properties": _json(task.properties),
        "data": _json(task.data),
    }
    if admin_view:
        item["channel_id"] = task.channel_id
    return item


async def _drawings(call: Call, *, user_id: int, admin_view: bool) -> dict[str, Any]:
    request = _base(call, user_id=user_id, admin_view=admin_view)
    request.platform = tasks_pb2.PLATFORM_MIDJOURNEY
    mj_id = _text(call, "mj_id")
    if mj_id:
        request.upstream_task_ids.append(mj_id)
    reply = await _fetch(call, request)
    items = [_drawing(task, admin_view) for task in reply.tasks]
    return paged(items, reply.total, request.page, request.page_size)


async def _tasks(call: Call, *, user_id: int, admin_view: bool) -> dict[str, Any]:
    request = _base(call, user_id=user_id, admin_view=admin_view)
    platform = _text(call, "platform").lower()
    if platform and platform not in _PLATFORMS:
        raise bad_request(f"platform must be one of {', '.join(sorted(_PLATFORMS))}")
    if platform:
        request.platform = _PLATFORMS[platform]
    else:
        request.platforms.extend(_PLATFORMS.values())  # Midjourney has its own drawing logs
    status = _text(call, "status").upper()
    if status and status not in _STATUSES:
        raise bad_request(f"status must be one of {', '.join(_STATUSES)}")
    if status:
        request.status = _STATUSES[status]
    task_id = _text(call, "task_id")
    if task_id:
        request.upstream_task_ids.append(task_id)
    request.action = _text(call, "action").upper()
    reply = await _fetch(call, request)
    items = [_task(task, admin_view) for task in reply.tasks]
    return paged(items, reply.total, request.page, request.page_size)


@endpoint(ROLE_ADMIN)
async def all_drawings(call: Call) -> dict[str, Any]:
    return await _drawings(call, user_id=0, admin_view=True)


@endpoint(ROLE_COMMON)
async def own_drawings(call: Call) -> dict[str, Any]:
    return await _drawings(call, user_id=call.user_id, admin_view=False)


@endpoint(ROLE_ADMIN)
async def all_tasks(call: Call) -> dict[str, Any]:
    return await _tasks(call, user_id=0, admin_view=True)


@endpoint(ROLE_COMMON)
async def own_tasks(call: Call) -> dict[str, Any]:
    return await _tasks(call, user_id=call.user_id, admin_view=False)


ROUTES = [
    Route("/api/mj/", all_drawings, methods=["GET"]),
    Route("/api/mj/self", own_drawings, methods=["GET"]),
    Route("/api/task/", all_tasks, methods=["GET"]),
    Route("/api/task/self", own_tasks, methods=["GET"]),
]
