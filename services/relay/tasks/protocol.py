"""Midjourney (midjourney-proxy) and Suno wire rules the relay applies on submit and fetch
(upstream `relay/relay-mj.go`, `relay/relay_task.go`, `relay/channel/task/suno`).

Kept free of I/O: the routes (routes/tasks.py) call these to validate a submit, name its priced
model, filter its body, tell an accepted submit from a refused one, and render stored tasks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from veloera.tasks.v1 import tasks_pb2

# midjourney-proxy answer codes: 1 submitted, 21 already exists, 22 queued (upstream accepts
# these and charges; anything else is a refusal).
ACCEPTED_CODES = frozenset({1, 21, 22})
# Upstream `constant/midjourney.go`: MjRequestError (bad input), MjErrorUnknown.
MJ_REQUEST_ERROR = 4
MJ_ERROR_UNKNOWN = 5
MODES = frozenset({"fast", "turbo", "relax", "mj-fast", "mj-turbo", "mj-relax"})
_MODE_FLAGS = re.compile(r"\s*--(?:fast|relax|turbo)\b")


class TaskInputError(ValueError):
    """A request the upstream would refuse anyway: answered 400 before any money moves."""


@dataclass(frozen=True, slots=True)
class MjSubmit:
    path: str  # the upstream path, e.g. /mj/submit/imagine
    action: str  # IMAGINE, UPSCALE, VARIATION, ... (stored with the task)
    model: str  # the priced name, e.g. mj_imagine
    origin_task: str  # change / modal / action: the task acted on ("" otherwise)
    is_task: bool  # False for upload-discord-images (no task to follow)


# submit path -> (action, required fields); the model is derived from the action.
_SUBMIT: dict[str, tuple[str, tuple[str, ...]]] = {
    "imagine": ("IMAGINE", ("prompt",)),
    "describe": ("DESCRIBE", ("base64",)),
    "blend": ("BLEND", ("base64Array",)),
    "shorten": ("SHORTEN", ("prompt",)),
    "change": ("", ("taskId", "action")),
    "simple-change": ("", ("content",)),
    "action": ("ACTION", ("taskId", "customId")),
    "modal": ("MODAL", ("taskId",)),
    "upload-discord-images": ("UPLOAD", ("base64Array",)),
}
# An action (or a Plus customId's kind) -> its priced model (upstream `CoverActionToModelName`).
_MODELS = {
    "IMAGINE": "mj_imagine",
    "DESCRIBE": "mj_describe",
    "BLEND": "mj_blend",
    "UPSCALE": "mj_upscale",
    "VARIATION": "mj_variation",
    "REROLL": "mj_reroll",
    "MODAL": "mj_modal",
    "ZOOM": "mj_zoom",
    "CUSTOM_ZOOM": "mj_custom_zoom",
    "PAN": "mj_pan",
    "INPAINT": "mj_inpaint",
    "HIGH_VARIATION": "mj_high_variation",
    "LOW_VARIATION": "mj_low_variation",
    "SHORTEN": "mj_shorten",
    "UPLOAD": "mj_upload",
    "SWAP_FACE": "swap_face",
    "ACTION": "mj_action",
}
_CHANGE_ACTIONS = frozenset({"UPSCALE", "VARIATION", "REROLL"})
_SIMPLE_CHANGE = re.compile(r"^\s*(\S+)\s+([UV])([1-4])\s*$|^\s*(\S+)\s+(R)\s*$", re.IGNORECASE)
# Plus customIds look like MJ::JOB::upsample::1::<hash>; their kind names the action.
_CUSTOM_ID_KINDS = (
    ("upsample", "UPSCALE"),
    ("variation", "VARIATION"),
    ("reroll", "REROLL"),
    ("Outpaint", "ZOOM"),
    ("CustomZoom", "CUSTOM_ZOOM"),
    ("pan_", "PAN"),
    ("Inpaint", "INPAINT"),
    ("high_variation", "HIGH_VARIATION"),
    ("low_variation", "LOW_VARIATION"),
)


def parse_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise TaskInputError("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise TaskInputError("the request body must be a JSON object")
    return body


def _require(body: dict[str, Any], fields: tuple[str, ...]) -> None:
    for name in fields:
        value = body.get(name)
        if value is None or value == "" or value == []:
            raise TaskInputError(f"{name} is required")
        if name in ("base64Array",) and not (
            isinstance(value, list) and all(isinstance(item, str) and item for item in value)
        ):
            raise TaskInputError(f"{name} must be a list of base64 images")
        if name not in ("base64Array",) and not isinstance(value, str):
            raise TaskInputError(f"{name} must be a string")


def _action_of_custom_id(custom_id: str) -> str:
    for marker, action in _CUSTOM_ID_KINDS:
        if marker in custom_id:
            return action
    return "ACTION"


def mj_submit(kind: str, body: dict[str, Any]) -> MjSubmit:
    """Validate a submit (`kind` is the path after /mj/submit/, or "swap" for face swap)."""
    if kind == "swap":
        _require(body, ("sourceBase64", "targetBase64"))
        return MjSubmit("/mj/insight-face/swap", "SWAP_FACE", "swap_face", "", True)
    if kind not in _SUBMIT:
        raise TaskInputError(f"unknown submit action {kind!r}")
    action, fields = _SUBMIT[kind]
    _require(body, fields)
    origin = ""
    if kind == "blend" and not 2 <= len(body["base64Array"]) <= 5:
        raise TaskInputError("blend takes 2 to 5 images")
    if kind == "change":
        action = str(body["action"]).upper()
        if action not in _CHANGE_ACTIONS:
            raise TaskInputError("action must be UPSCALE, VARIATION or REROLL")
        if action != "REROLL" and body.get("index") not in (1, 2, 3, 4):
            raise TaskInputError("index must be 1 to 4")
        origin = body["taskId"]
    elif kind == "simple-change":
        match = _SIMPLE_CHANGE.match(body["content"])
        if match is None:
            raise TaskInputError("content must be '<task id> U1..U4|V1..V4|R'")
        if match.group(5):
            origin, action = match.group(4), "REROLL"
        else:
            origin = match.group(1)
            action = "UPSCALE" if match.group(2).upper() == "U" else "VARIATION"
    elif kind == "action":
        origin = body["taskId"]
        action = _action_of_custom_id(body["customId"])
    elif kind == "modal":
        origin = body["taskId"]
    return MjSubmit(f"/mj/submit/{kind}", action, _MODELS[action], origin, action != "UPLOAD")


def filter_mj_body(
    body: dict[str, Any], *, notify: bool, account_filter: bool, mode_clear: bool
) -> dict[str, Any]:
    """Upstream's body filtering: `notifyHook` only with MjNotifyEnabled, `accountFilter` only
    with MjAccountFilterEnabled, mode flags stripped from the prompt with MjModeClearEnabled."""
    out = dict(body)
    if not notify:
        out.pop("notifyHook", None)
    if not account_filter:
        out.pop("accountFilter", None)
    if mode_clear and isinstance(out.get("prompt"), str):
        out["prompt"] = _MODE_FLAGS.sub("", out["prompt"])
    return out


@dataclass(frozen=True, slots=True)
class MjAnswer:
    code: int
    description: str
    result: str  # the upstream task id when accepted
    raw: dict[str, Any]

    @property
    def accepted(self) -> bool:
        return self.code in ACCEPTED_CODES


def mj_answer(body: bytes) -> MjAnswer | None:
    """The submit answer, or None when it is not midjourney-proxy's shape."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("code"), int):
        return None
    result = payload.get("result")
    return MjAnswer(
        code=payload["code"],
        description=str(payload.get("description") or ""),
        result=str(result) if isinstance(result, (str, int)) else "",
        raw=payload,
    )


def mj_accepted(body: bytes) -> MjAnswer | None:
    """The submit answer when midjourney-proxy accepted the task (codes 1, 21, 22)."""
    answer = mj_answer(body)
    return answer if answer is not None and answer.accepted else None


def mj_error(code: int, description: str) -> dict[str, Any]:
    """midjourney-proxy's answer shape for an error of ours (upstream `MidjourneyErrorWrapper`)."""
    return {"code": code, "description": description, "result": "", "properties": {}}


_STATUS_NAMES: dict[int, str] = {
    tasks_pb2.TASK_STATUS_NOT_START: "NOT_START",
    tasks_pb2.TASK_STATUS_SUBMITTED: "SUBMITTED",
    tasks_pb2.TASK_STATUS_QUEUED: "QUEUED",
    tasks_pb2.TASK_STATUS_IN_PROGRESS: "IN_PROGRESS",
    tasks_pb2.TASK_STATUS_FAILURE: "FAILURE",
    tasks_pb2.TASK_STATUS_SUCCESS: "SUCCESS",
    tasks_pb2.TASK_STATUS_UNKNOWN: "UNKNOWN",
}


def status_name(status: int) -> str:
    return _STATUS_NAMES.get(status, "UNKNOWN")


def json_dict(text: str) -> dict[str, Any]:
    """A stored JSON object (a task's data or properties); anything else reads as empty."""
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def mj_image_url(task: tasks_pb2.Task) -> str:
    """The upstream's image URL of a stored task ("" before it has one)."""
    url = json_dict(task.data).get("imageUrl")
    return url if isinstance(url, str) else ""


def mj_task_view(task: tasks_pb2.Task, image_base: str = "") -> dict[str, Any]:
    """A stored Midjourney task in midjourney-proxy's task shape (upstream `dto.MidjourneyDto`):
    our status, progress and fail reason over the upstream's last view. With `image_base`
    (MjForwardUrlEnabled) the image URL points at this relay's /mj/image/{id}."""
    data = json_dict(task.data)
    properties = json_dict(task.properties)
    image_url = str(data.get("imageUrl") or "")
    if image_url and image_base:
        image_url = f"{image_base.rstrip('/')}/mj/image/{task.upstream_task_id}"
    return {
        "id": task.upstream_task_id,
        "action": task.action,
        "prompt": data.get("prompt") or properties.get("prompt", ""),
        "promptEn": data.get("promptEn", ""),
        "description": data.get("description", ""),
        "state": data.get("state", ""),
        "submitTime": task.submit_time * 1000,
        "startTime": task.start_time * 1000,
        "finishTime": task.finish_time * 1000,
        "imageUrl": image_url,
        "status": status_name(task.status),
        "progress": task.progress or "0%",
        "failReason": task.fail_reason,
        "buttons": data.get("buttons", []),
        "properties": data.get("properties", {}),
    }


# ------------------------------------------------------------------ Suno

SUNO_ACTIONS = {"music": "MUSIC", "lyrics": "LYRICS"}


def suno_submit(action: str, body: dict[str, Any]) -> tuple[str, str]:
    """(ACTION, priced model) of a Suno submit; music needs a prompt or gpt_description_prompt,
    lyrics a prompt (upstream `relay/channel/task/suno/adaptor.go: ValidateRequestAndSetAction`)."""
    if action not in SUNO_ACTIONS:
        raise TaskInputError("action must be music or lyrics")
    prompt = body.get("prompt")
    described = body.get("gpt_description_prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise TaskInputError("prompt must be a string")
    if described is not None and not isinstance(described, str):
        raise TaskInputError("gpt_description_prompt must be a string")
    if action == "lyrics" and not prompt:
        raise TaskInputError("prompt is required")
    if action == "music" and not (prompt or described):
        raise TaskInputError("prompt or gpt_description_prompt is required")
    return SUNO_ACTIONS[action], f"suno_{action}"


def suno_accepted(body: bytes) -> str | None:
    """The upstream task id of an accepted Suno submit (`{"code": "success", "data": id}`)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or payload.get("code") != "success":
        return None
    data = payload.get("data")
    return data if isinstance(data, str) and data else None


def suno_task_view(task: tasks_pb2.Task) -> dict[str, Any]:
    """A stored Suno task as upstream's `dto.TaskDto`."""
    try:
        data = orjson.loads(task.data or "null")
    except orjson.JSONDecodeError:
        data = None
    return {
        "task_id": task.upstream_task_id,
        "action": task.action,
        "status": status_name(task.status),
        "fail_reason": task.fail_reason,
        "submit_time": task.submit_time,
        "start_time": task.start_time,
        "finish_time": task.finish_time,
        "progress": task.progress or "0%",
        "data": data,
    }


def mj_seed(task: tasks_pb2.Task) -> str:
    """The image seed midjourney-proxy reported (its task `properties.seed`), if any."""
    properties = json_dict(task.data).get("properties")
    seed = properties.get("seed") if isinstance(properties, dict) else None
    return str(seed) if isinstance(seed, (str, int)) and seed != "" else ""
