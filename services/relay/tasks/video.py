"""OpenAI's video API (`POST /v1/videos`, `GET /v1/videos/{id}`, `GET /v1/videos/{id}/content`)
over OpenAI channels, whose upstream speaks the same API (Sora): the native video provider.

A create holds the model's price per video (`ModelPrice`, per call), is charged when the
upstream accepts it (2xx with a video id) and released otherwise; the video is then a task of
platform VIDEO the tasks service polls (through the relay's TASK_POLL) and refunds on failure.
Retrieve answers from the stored state; content streams the finished file from the channel.
"""

from __future__ import annotations

from typing import Any

import orjson
from veloera.tasks.v1 import tasks_pb2

from services.relay.errors import RelayError

_STATUS = {
    "queued": tasks_pb2.TASK_STATUS_QUEUED,
    "in_progress": tasks_pb2.TASK_STATUS_IN_PROGRESS,
    "completed": tasks_pb2.TASK_STATUS_SUCCESS,
    "failed": tasks_pb2.TASK_STATUS_FAILURE,
}
_NAMES = {
    tasks_pb2.TASK_STATUS_NOT_START: "queued",
    tasks_pb2.TASK_STATUS_SUBMITTED: "queued",
    tasks_pb2.TASK_STATUS_QUEUED: "queued",
    tasks_pb2.TASK_STATUS_IN_PROGRESS: "in_progress",
    tasks_pb2.TASK_STATUS_SUCCESS: "completed",
    tasks_pb2.TASK_STATUS_FAILURE: "failed",
}
_FIELDS = {"model": str, "prompt": str, "seconds": str, "size": str}


def _invalid(message: str, param: str | None = None) -> RelayError:
    return RelayError(400, message, type_="invalid_request_error", param=param)


def parse_create(raw: bytes) -> dict[str, Any]:
    """The create body (JSON): model and prompt required; seconds and size strings."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _invalid("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _invalid("the request body must be a JSON object")
    for name in ("model", "prompt"):
        if not body.get(name):
            raise _invalid(f"{name} is required", name)
    for name, kind in _FIELDS.items():
        if name in body and not isinstance(body[name], kind):
            raise _invalid(f"{name} must be a string", name)
    return body


def status_of(text: object) -> int:
    return _STATUS.get(str(text or ""), tasks_pb2.TASK_STATUS_UNKNOWN)


def accepted_id(body: bytes) -> str | None:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    video_id = payload.get("id") if isinstance(payload, dict) else None
    return video_id if isinstance(video_id, str) and video_id else None


def view(task: tasks_pb2.Task, submitted: dict[str, Any] | None = None) -> dict[str, Any]:
    """A stored video in OpenAI's video object shape, our status over the upstream's last view."""
    try:
        data = orjson.loads(task.data or "{}")
    except orjson.JSONDecodeError:
        data = {}
    data = data if isinstance(data, dict) else {}
    base = {**(submitted or {}), **data}
    status = _NAMES.get(task.status, "queued")
    progress = base.get("progress")
    out = {
        "id": task.upstream_task_id,
        "object": "video",
        "model": base.get("model") or task.model_name,
        "status": status,
        "progress": 100 if status in ("completed", "failed") else progress or 0,
        "created_at": base.get("created_at") or task.submit_time,
        "completed_at": base.get("completed_at") or (task.finish_time or None),
        "seconds": base.get("seconds"),
        "size": base.get("size"),
    }
    if status == "failed":
        out["error"] = {"code": "video_generation_failed", "message": task.fail_reason}
    return out
