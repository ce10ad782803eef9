"""TASK_POLL responder: the tasks service's poller asks an upstream about its tasks through the
relay, which holds the channel keys (they never leave accounts and the relays). Midjourney:
`POST /mj/task/list-by-condition {"ids": [...]}`; Suno: `POST /suno/fetch {"ids": [...]}`
(upstream `controller/midjourney.go`, `relay/channel/task/suno/adaptor.go: FetchTask`).
Every relay answers in one queue group."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import quote

import orjson
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription
from veloera.tasks.v1 import tasks_pb2

from services.relay.routing.table import ChannelInfo, KeyRotator, RoutingTable
from services.relay.tasks.upstream import TaskError, task_upstream_get, task_upstream_post
from services.relay.upstream.http import Sessions
from services.shared import natsutil, subjects
from services.shared.channel_types import MIDJOURNEY_TYPES, OPENAI, SUNO

logger = logging.getLogger(__name__)

QUEUE = "relay-task-poll"
POLL_TIMEOUT = 15.0  # upstream's poll timeout

_PATHS = {
    tasks_pb2.PLATFORM_MIDJOURNEY: ("/mj/task/list-by-condition", MIDJOURNEY_TYPES),
    tasks_pb2.PLATFORM_SUNO: ("/suno/fetch", frozenset({SUNO})),
    tasks_pb2.PLATFORM_VIDEO: ("/v1/videos/{id}", frozenset({OPENAI})),
}
_MAX_VIDEO_IDS = 20  # OpenAI's video API has no batch read: one GET per video


async def answer(
    data: bytes,
    table: RoutingTable | None,
    sessions: Sessions,
    keys: KeyRotator,
    allow_private: bool,
) -> tasks_pb2.PollTasksResponse:
    try:
        request = tasks_pb2.PollTasksRequest.FromString(data)
    except DecodeError:
        return tasks_pb2.PollTasksResponse(error="undecodable request")
    if table is None:
        return tasks_pb2.PollTasksResponse(error="routing is not ready")
    if request.platform not in _PATHS:
        return tasks_pb2.PollTasksResponse(error="platform is not polled")
    path, types = _PATHS[request.platform]
    channel = table.pinned(request.channel_id)
    if channel is None or channel.type not in types:
        return tasks_pb2.PollTasksResponse(channel_gone=True)
    if channel.private_target and not allow_private:
        return tasks_pb2.PollTasksResponse(error="the channel points at a private address")
    _key_id, key = keys.pick(channel)
    if request.platform == tasks_pb2.PLATFORM_VIDEO:
        return await _videos(sessions, channel, key, list(request.upstream_task_ids))
    try:
        status, body = await task_upstream_post(
            sessions,
            channel,
            path,
            {"ids": list(request.upstream_task_ids)},
            key=key,
            midjourney=request.platform == tasks_pb2.PLATFORM_MIDJOURNEY,
            timeout=POLL_TIMEOUT,
        )
    except TaskError as exc:
        return tasks_pb2.PollTasksResponse(error=exc.description)
    if not 200 <= status < 300:
        return tasks_pb2.PollTasksResponse(error=f"upstream answered {status}")
    return tasks_pb2.PollTasksResponse(body=body.decode("utf-8", "replace"))


async def _videos(
    sessions: Sessions, channel: ChannelInfo, key: str, ids: list[str]
) -> tasks_pb2.PollTasksResponse:
    """Each video's object, as one JSON list (what the tasks service's parser reads)."""
    found: list[object] = []
    for video_id in ids[:_MAX_VIDEO_IDS]:
        try:
            status, body = await task_upstream_get(
                sessions,
                channel,
                f"/v1/videos/{quote(video_id, safe='')}",
                key=key,
                timeout=POLL_TIMEOUT,
            )
        except TaskError as exc:
            return tasks_pb2.PollTasksResponse(error=exc.description)
        if status == 404:
            continue  # unknown upstream: left to the task timeout
        if not 200 <= status < 300:
            return tasks_pb2.PollTasksResponse(error=f"upstream answered {status}")
        try:
            found.append(orjson.loads(body))
        except orjson.JSONDecodeError:
            return tasks_pb2.PollTasksResponse(error="upstream answered no JSON")
    return tasks_pb2.PollTasksResponse(body=orjson.dumps(found).decode())


async def serve(
    nc: NATS,
    table: Callable[[], RoutingTable | None],
    sessions: Callable[[], Sessions],
    keys: KeyRotator,
    allow_private: bool,
) -> Subscription:
    return await natsutil.serve_requests(
        nc,
        subjects.TASK_POLL,
        QUEUE,
        lambda data: answer(data, table(), sessions(), keys, allow_private),
    )
