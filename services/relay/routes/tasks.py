"""Async task routes: the Midjourney proxy (`/mj/*`, `/{mode}/mj/*`) and Suno (`/suno/*`)
(upstream `relay/relay-mj.go`, `relay/relay_task.go`).

A submit goes through the one money path: hold the action's price, send it to a channel of the
platform, settle the hold when the upstream accepted (Midjourney codes 1, 21, 22; Suno
`"code": "success"`) and release it otherwise; an accepted task is published to the tasks
service (JetStream TASKS), which stores, polls and, on failure, refunds it. Fetches read the
task state the tasks service owns, over NATS request/reply (TASKS_FETCH).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import nats.errors
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from veloera.billing.v1 import billing_pb2
from veloera.tasks.v1 import tasks_pb2

from services.relay.adaptors.base import parse_error_body
from services.relay.auth import AuthEntry, ParsedKey
from services.relay.billing.charge import Charge
from services.relay.client import authorise, client_ip, count, read_body, read_key
from services.relay.errors import REQUEST_ID_HEADER, RelayError, error_response
from services.relay.ids import new_request_id
from services.relay.job import resolve
from services.relay.options import RelayOptions
from services.relay.routing.table import ChannelInfo, RoutingTable
from services.relay.state import RelayContext
from services.relay.tasks import protocol as tp
from services.relay.tasks import video
from services.relay.tasks.upstream import TaskError, open_task_upstream_get, task_upstream_post
from services.relay.upstream.http import UPSTREAM_ERRORS, usable_proxy
from services.relay.upstream.scrub import scrub
from services.shared import subjects
from services.shared.addresses import url_is_private
from services.shared.channel_types import MIDJOURNEY_TYPES, OPENAI, SUNO

logger = logging.getLogger(__name__)

_TASK_USAGE = billing_pb2.Usage(kind="task")
T = TypeVar("T")
_IMAGE_TIMEOUT = 60.0
_CHUNK = 64 * 1024


def _mj_response(status: int, body: object, request_id: str) -> Response:
    return JSONResponse(body, status_code=status, headers={REQUEST_ID_HEADER: request_id})


def _mj_failure(exc: TaskError | RelayError, request_id: str) -> Response:
    if isinstance(exc, RelayError):
        code = tp.MJ_REQUEST_ERROR if exc.status < 500 else tp.MJ_ERROR_UNKNOWN
        exc = TaskError(exc.status, code, exc.message)
    body = tp.mj_error(exc.code, f"{exc.description} (request id: {request_id})")
    return _mj_response(exc.status, body, request_id)


def _suno_failure(exc: TaskError | RelayError, request_id: str) -> Response:
    status, message = (
        (exc.status, exc.description) if isinstance(exc, TaskError) else (exc.status, exc.message)
    )
    body = {"code": "error", "message": f"{message} (request id: {request_id})", "data": None}
    return _mj_response(status, body, request_id)


async def _relay_body(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The upstream's body as it arrives (a video may be large); the connection is released
    however the client's download ends."""
    try:
        async for chunk in upstream.content.iter_chunked(_CHUNK):
            yield chunk
    finally:
        upstream.release()


def _video_failure(exc: TaskError | RelayError, request_id: str) -> Response:
    if isinstance(exc, TaskError):
        exc = RelayError(exc.status, exc.description)
    return error_response(exc, request_id)


Handler = Callable[[Request], Awaitable[Response]]
Inner = Callable[[Request, str], Awaitable[Response]]
Failure = Callable[[TaskError | RelayError, str], Response]


def _answered(metric: str, failure: Failure, inner: Inner) -> Handler:
    """A route: a new request id, every refusal in the platform's error shape, counted."""

    async def handle(request: Request) -> Response:
        request_id = new_request_id()
        try:
            response = await inner(request, request_id)
        except tp.TaskInputError as exc:
            response = failure(TaskError(400, tp.MJ_REQUEST_ERROR, str(exc)), request_id)
        except (TaskError, RelayError) as exc:
            response = failure(exc, request_id)
        count(metric, response.status_code)
        return response

    return handle


@dataclass(frozen=True, slots=True)
class Submission:
    """A task submit that passed its platform's checks: who pays, where it goes, what is sent."""

    request: Request
    request_id: str
    started: float
    entry: AuthEntry
    channel: ChannelInfo
    model: str
    path: str
    body: dict[str, Any]
    midjourney: bool = False


class TaskRoutes:
    def __init__(self, ctx: RelayContext) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------------ Midjourney

    async def mj_submit(self, request: Request, request_id: str) -> Response:
        started = time.perf_counter()
        kind = request.path_params.get("action", "swap")
        options = self._options()
        if not options.drawing_enabled:
            raise TaskError(403, tp.MJ_REQUEST_ERROR, "drawing is disabled on this site")
        key = read_key(request)
        body = tp.parse_object(await read_body(request, self.ctx.settings.max_body_bytes))
        submit = tp.mj_submit(kind, body)
        entry = await authorise(self.ctx, request, key, submit.model)
        channel = await self._mj_channel(entry, key, submit)
        outgoing = tp.filter_mj_body(
            body,
            notify=options.mj_notify,
            account_filter=options.mj_account_filter,
            mode_clear=options.mj_mode_clear,
        )
        sub = Submission(
            request, request_id, started, entry, channel, submit.model, submit.path, outgoing, True
        )
        answer, quota, (status, raw) = await self._submit(sub, tp.mj_accepted)
        if answer is None:
            return self._mj_refusal(status, raw, request_id)
        if submit.is_task and answer.result:
            self._publish(
                sub,
                tasks_pb2.PLATFORM_MIDJOURNEY,
                answer.result,
                submit.action,
                quota,
                {"prompt": body.get("prompt", ""), "origin_task": submit.origin_task},
            )
        return _mj_response(200, answer.raw, request_id)

    def _mj_refusal(self, status: int, raw: bytes, request_id: str) -> Response:
        """Nothing was charged; the client sees the upstream's own code and description."""
        answer = tp.mj_answer(raw) if 200 <= status < 300 else None
        if answer is not None:
            body = tp.mj_error(answer.code, answer.description or "the upstream refused the task")
            return _mj_response(400 if status < 300 else status, body, request_id)
        logger.warning("midjourney upstream answered %d without its JSON shape", status)
        return _mj_failure(
            TaskError(502, tp.MJ_ERROR_UNKNOWN, f"upstream answered {status}"), request_id
        )

    async def _mj_channel(
        self, entry: AuthEntry, key: ParsedKey, submit: tp.MjSubmit
    ) -> ChannelInfo:
        """A change, modal or action goes to the channel of the task it acts on (upstream
        forces it: the task exists only there); anything else is routed like any model."""
        table = self._table()
        if submit.origin_task:
            origin = await self._fetch_one(
                entry.user.id, tasks_pb2.PLATFORM_MIDJOURNEY, submit.origin_task
            )
            if origin is None:
                raise TaskError(404, tp.MJ_REQUEST_ERROR, "task_not_found: the original task")
            if (
                self._options().mj_action_check_success
                and submit.action != "MODAL"
                and origin.status != tasks_pb2.TASK_STATUS_SUCCESS
            ):
                raise TaskError(400, tp.MJ_REQUEST_ERROR, "the original task has not succeeded")
            channel = table.pinned(origin.channel_id)
            if channel is None:
                raise TaskError(
                    503, tp.MJ_ERROR_UNKNOWN, "the original task's channel is disabled or gone"
                )
            return channel
        channel = resolve(table, entry.group, submit.model, key.channel_id).channel
        if channel.type not in MIDJOURNEY_TYPES:
            raise TaskError(503, tp.MJ_ERROR_UNKNOWN, f"no Midjourney channel for {submit.model}")
        return channel

    async def mj_fetch(self, request: Request, request_id: str) -> Response:
        task = await self._own_task(request, tasks_pb2.PLATFORM_MIDJOURNEY, tp.MJ_REQUEST_ERROR)
        return _mj_response(200, self._mj_view(task), request_id)

    async def mj_image_seed(self, request: Request, request_id: str) -> Response:
        """The seed midjourney-proxy reported for a finished task (from the stored view)."""
        task = await self._own_task(request, tasks_pb2.PLATFORM_MIDJOURNEY, tp.MJ_REQUEST_ERROR)
        seed = tp.mj_seed(task)
        if not seed:
            raise TaskError(404, tp.MJ_REQUEST_ERROR, "the task has no image seed yet")
        return _mj_response(200, {"code": 1, "description": "ok", "result": seed}, request_id)

    async def mj_list(self, request: Request, request_id: str) -> Response:
        tasks = await self._listed(request, tasks_pb2.PLATFORM_MIDJOURNEY, tp.MJ_REQUEST_ERROR)
        return _mj_response(200, [self._mj_view(task) for task in tasks], request_id)

    async def mj_notify(self, request: Request, request_id: str) -> Response:
        """midjourney-proxy's callback: accepted (authenticated) and otherwise ignored; the
        poller reads the same state from the upstream, so a forged callback changes nothing."""
        await self._reader(request)
        tp.parse_object(await read_body(request, self.ctx.settings.max_body_bytes))
        return _mj_response(200, {"code": 1, "description": "ok"}, request_id)

    async def mj_image(self, request: Request, request_id: str) -> Response:
        """`/mj/image/{id}` (MjForwardUrlEnabled): the task's image through this relay, so
        clients never see the upstream's image host. No key, as upstream: the task id is the
        secret; off unless the option is on."""
        if not self._options().mj_forward_url:
            raise TaskError(404, tp.MJ_REQUEST_ERROR, "image forwarding is off")
        task = await self._fetch_one(0, tasks_pb2.PLATFORM_MIDJOURNEY, request.path_params["id"])
        url = tp.mj_image_url(task) if task is not None else ""
        if not url:
            raise TaskError(404, tp.MJ_REQUEST_ERROR, "the task has no image")
        return await self._image(url)

    async def _image(self, url: str) -> Response:
        settings = self.ctx.settings
        if not url.lower().startswith(("http://", "https://")) or (
            url_is_private(url) and not settings.channel_private_addresses
        ):
            raise TaskError(502, tp.MJ_ERROR_UNKNOWN, "the image address cannot be fetched")
        limit = settings.max_file_download_bytes
        try:
            async with self.ctx.http.get(
                url, timeout=aiohttp.ClientTimeout(total=_IMAGE_TIMEOUT), allow_redirects=False
            ) as upstream:
                if upstream.status != 200:
                    answer = f"image host answered {upstream.status}"
                    raise TaskError(502, tp.MJ_ERROR_UNKNOWN, answer)
                body = bytearray()
                async for chunk in upstream.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > limit:
                        raise TaskError(502, tp.MJ_ERROR_UNKNOWN, "the image is too large")
                media_type = upstream.headers.get("Content-Type", "application/octet-stream")
        except TimeoutError:
            raise TaskError(504, tp.MJ_ERROR_UNKNOWN, "image host timed out") from None
        except (ValueError, *UPSTREAM_ERRORS):
            raise TaskError(502, tp.MJ_ERROR_UNKNOWN, "image host unreachable") from None
        return Response(bytes(body), media_type=media_type)

    def _mj_view(self, task: tasks_pb2.Task) -> dict[str, Any]:
        options = self._options()
        base = options.server_address if options.mj_forward_url else ""
        return tp.mj_task_view(task, base)

    # ------------------------------------------------------------------ Suno

    async def suno_submit(self, request: Request, request_id: str) -> Response:
        started = time.perf_counter()
        action = request.path_params["action"]
        if not self._options().task_enabled:
            raise TaskError(403, 0, "tasks are disabled on this site")
        key = read_key(request)
        body = tp.parse_object(await read_body(request, self.ctx.settings.max_body_bytes))
        task_action, model = tp.suno_submit(action, body)
        entry = await authorise(self.ctx, request, key, model)
        channel = resolve(self._table(), entry.group, model, key.channel_id).channel
        if channel.type != SUNO:
            raise TaskError(503, 0, f"no Suno channel for {model}")
        path = f"/suno/submit/{action}"
        sub = Submission(request, request_id, started, entry, channel, model, path, body)
        task_id, quota, (status, raw) = await self._submit(sub, tp.suno_accepted)
        if task_id is None:
            return self._suno_refusal(status, raw, request_id)
        prompt = body.get("prompt") or body.get("gpt_description_prompt", "")
        self._publish(sub, tasks_pb2.PLATFORM_SUNO, task_id, task_action, quota, {"input": prompt})
        return _mj_response(200, {"code": "success", "message": "", "data": task_id}, request_id)

    def _suno_refusal(self, status: int, raw: bytes, request_id: str) -> Response:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = None
        message = payload.get("message") if isinstance(payload, dict) else None
        text = message if isinstance(message, str) and message else f"upstream answered {status}"
        return _suno_failure(TaskError(400 if status < 300 else status, 0, text), request_id)

    async def suno_fetch(self, request: Request, request_id: str) -> Response:
        tasks = await self._listed(request, tasks_pb2.PLATFORM_SUNO, 0)
        data = [tp.suno_task_view(task) for task in tasks]
        return _mj_response(200, {"code": "success", "message": "", "data": data}, request_id)

    async def suno_fetch_one(self, request: Request, request_id: str) -> Response:
        task = await self._own_task(request, tasks_pb2.PLATFORM_SUNO, 0)
        body = {"code": "success", "message": "", "data": tp.suno_task_view(task)}
        return _mj_response(200, body, request_id)

    # ------------------------------------------------------------------ OpenAI video

    async def video_create(self, request: Request, request_id: str) -> Response:
        started = time.perf_counter()
        if not self._options().task_enabled:
            raise RelayError(403, "tasks are disabled on this site", code="tasks_disabled")
        key = read_key(request)
        if not request.headers.get("content-type", "").lower().startswith("application/json"):
            raise RelayError(
                415, "this endpoint takes application/json", type_="invalid_request_error"
            )
        body = video.parse_create(await read_body(request, self.ctx.settings.max_body_bytes))
        model = body["model"]
        entry = await authorise(self.ctx, request, key, model)
        channel = resolve(self._table(), entry.group, model, key.channel_id).channel
        if channel.type != OPENAI:
            raise RelayError(503, f"no video channel for {model}", code="no_available_channel")
        outgoing = {**body, "model": channel.upstream_model(model)}
        path = "/v1/videos"
        sub = Submission(request, request_id, started, entry, channel, model, path, outgoing)
        video_id, quota, (status, raw) = await self._submit(sub, video.accepted_id)
        if video_id is None:
            message, _error = parse_error_body(status, raw)
            keys = [secret for _id, secret in channel.keys]
            raise RelayError(status if status >= 400 else 502, scrub(message, keys))
        shown: dict[str, Any] = {k: body[k] for k in ("prompt", "seconds", "size") if k in body}
        self._publish(sub, tasks_pb2.PLATFORM_VIDEO, video_id, "GENERATE", quota, shown)
        return Response(raw, media_type="application/json", headers={REQUEST_ID_HEADER: request_id})

    async def video_retrieve(self, request: Request, request_id: str) -> Response:
        task = await self._video_task(request)
        return JSONResponse(
            video.view(task, tp.json_dict(task.properties)),
            headers={REQUEST_ID_HEADER: request_id},
        )

    async def video_content(self, request: Request, request_id: str) -> Response:
        """The finished file, streamed from the channel that made it."""
        task = await self._video_task(request)
        if task.status != tasks_pb2.TASK_STATUS_SUCCESS:
            raise RelayError(409, "the video is not completed", type_="invalid_request_error")
        channel = self._table().pinned(task.channel_id)
        if channel is None:
            raise RelayError(503, "the video's channel is disabled or gone")
        _key_id, key = self.ctx.keys.pick(channel)
        upstream = await open_task_upstream_get(
            self.ctx.sessions,
            channel,
            f"/v1/videos/{quote(task.upstream_task_id, safe='')}/content",
            key=key,
            idle_timeout=self.ctx.settings.task_submit_timeout,
        )
        return StreamingResponse(
            _relay_body(upstream),
            media_type=upstream.headers.get("Content-Type", "video/mp4"),
            headers={REQUEST_ID_HEADER: request_id},
        )

    async def _video_task(self, request: Request) -> tasks_pb2.Task:
        entry = await self._reader(request)
        task = await self._fetch_one(
            entry.user.id, tasks_pb2.PLATFORM_VIDEO, request.path_params["id"]
        )
        if task is None:
            raise RelayError(
                404, "no video with this id", type_="invalid_request_error", code="not_found"
            )
        return task

    # ------------------------------------------------------------------ shared steps

    def _table(self) -> RoutingTable:
        table = self.ctx.snapshot.table
        if table is None:
            raise RelayError(503, "routing is not ready", code="not_ready")
        return table

    def _options(self) -> RelayOptions:
        return self._table().options

    async def _reader(self, request: Request) -> AuthEntry:
        """A fetch needs a valid key, no model and no channel (upstream skips Distribute)."""
        return await authorise(self.ctx, request, read_key(request), None)

    async def _submit(
        self, sub: Submission, accepted: Callable[[bytes], T | None]
    ) -> tuple[T | None, int, tuple[int, bytes]]:
        """The one money path of a submit: hold the action's price, send the task, settle the
        hold when `accepted` finds the upstream took it (its answer, e.g. the task id) and
        release it otherwise. Returns (answer or None, the price held, the upstream's answer)."""
        entry = sub.entry
        quota = await self.ctx.biller.reserve_task(
            request_id=sub.request_id,
            user_id=entry.user.id,
            token_id=entry.token.id,
            model=sub.model,
            group=entry.group,
            accept_unpriced=entry.accept_unpriced,
        )
        charge = Charge(self.ctx.biller, sub.request_id)
        try:
            status, raw = await self._post(sub.channel, sub.path, sub.body, sub.midjourney)
        except BaseException:
            charge.release("upstream failed")
            raise
        answer = accepted(raw) if 200 <= status < 300 else None
        if answer is None:
            charge.release("upstream refused the task")
        else:
            charge.settle(lambda: self._settlement(sub))
        return answer, quota, (status, raw)

    def _settlement(self, sub: Submission) -> billing_pb2.SettleRequest:
        entry, channel = sub.entry, sub.channel
        table = self.ctx.snapshot.table
        proxy = table.options.reverse_proxy if table is not None else ""
        return billing_pb2.SettleRequest(
            request_id=sub.request_id,
            usage=_TASK_USAGE,
            username=entry.user.username,
            token_name=entry.token.name,
            model_name=sub.model,
            upstream_model=sub.model,
            channel_id=channel.id,
            channel_name=channel.name,
            elapsed_ms=int((time.perf_counter() - sub.started) * 1000),
            channels_tried=[channel.id],
            client_ip=(
                client_ip(sub.request, proxy, self.ctx.settings.trusted_proxies)
                if entry.log_ip
                else ""
            ),
            quota_warning_threshold=entry.quota_warning_threshold,
        )

    async def _post(
        self, channel: ChannelInfo, path: str, body: dict[str, Any], midjourney: bool
    ) -> tuple[int, bytes]:
        """POST to the channel's upstream; (status, body). Connection failures and timeouts
        raise TaskError 502/504 (the hold is then released)."""
        if channel.private_target and not self.ctx.settings.channel_private_addresses:
            raise TaskError(502, tp.MJ_ERROR_UNKNOWN, "the channel points at a private address")
        proxy = channel.setting.proxy
        if proxy and not usable_proxy(proxy):
            raise TaskError(502, tp.MJ_ERROR_UNKNOWN, "the channel's proxy cannot be used")
        _key_id, key = self.ctx.keys.pick(channel)
        return await task_upstream_post(
            self.ctx.sessions,
            channel,
            path,
            body,
            key=key,
            midjourney=midjourney,
            timeout=self.ctx.settings.task_submit_timeout,
        )

    def _publish(
        self,
        sub: Submission,
        platform: tasks_pb2.Platform.ValueType,
        upstream_task_id: str,
        action: str,
        quota: int,
        properties: dict[str, Any],
    ) -> None:
        """Hand the accepted task to the tasks service: stored in JetStream in the background,
        retried until acknowledged (the answer does not wait for it)."""
        event = tasks_pb2.TaskSubmitted(
            request_id=sub.request_id,
            platform=platform,
            upstream_task_id=upstream_task_id,
            action=action,
            user_id=sub.entry.user.id,
            token_id=sub.entry.token.id,
            channel_id=sub.channel.id,
            quota=quota,
            model_name=sub.model,
            properties=orjson.dumps(properties).decode(),
            submit_time=int(time.time()),
        )
        self.ctx.hand_over_task(event.SerializeToString(), sub.request_id)

    async def _fetch(
        self, user_id: int, platform: tasks_pb2.Platform.ValueType, ids: list[str]
    ) -> list[tasks_pb2.Task]:
        request = tasks_pb2.FetchTasksRequest(
            user_id=user_id, platform=platform, upstream_task_ids=ids, page_size=len(ids)
        )
        nc = self.ctx.nats
        if nc is None:
            raise TaskError(503, tp.MJ_ERROR_UNKNOWN, "task state is unavailable")
        try:
            reply = await nc.request(
                subjects.TASKS_FETCH,
                request.SerializeToString(),
                timeout=self.ctx.settings.tasks_fetch_timeout,
            )
            answer = tasks_pb2.FetchTasksResponse.FromString(reply.data)
        except (nats.errors.Error, TimeoutError):
            raise TaskError(503, tp.MJ_ERROR_UNKNOWN, "task state is unavailable") from None
        if answer.error:
            raise TaskError(503, tp.MJ_ERROR_UNKNOWN, f"task state is unavailable: {answer.error}")
        return list(answer.tasks)

    async def _listed(
        self, request: Request, platform: tasks_pb2.Platform.ValueType, input_code: int
    ) -> list[tasks_pb2.Task]:
        """The caller's tasks named by the body's `ids` (a list-by-condition or batch fetch)."""
        entry = await self._reader(request)
        body = tp.parse_object(await read_body(request, self.ctx.settings.max_body_bytes))
        ids = body.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise TaskError(400, input_code, "ids must be a list of task ids")
        return await self._fetch(entry.user.id, platform, ids) if ids else []

    async def _own_task(
        self, request: Request, platform: tasks_pb2.Platform.ValueType, not_found_code: int
    ) -> tasks_pb2.Task:
        """The caller's task named by the path's `id`, or a 404 in the platform's shape."""
        entry = await self._reader(request)
        task = await self._fetch_one(entry.user.id, platform, request.path_params["id"])
        if task is None:
            raise TaskError(404, not_found_code, "task_not_found")
        return task

    async def _fetch_one(
        self, user_id: int, platform: tasks_pb2.Platform.ValueType, task_id: str
    ) -> tasks_pb2.Task | None:
        tasks = await self._fetch(user_id, platform, [task_id])
        return tasks[0] if tasks else None


def task_routes(ctx: RelayContext) -> list[BaseRoute]:
    """`/mj/*` (and `/{mode}/mj/*`, mode fast, turbo or relax, with or without `mj-`) and
    `/suno/*`. The mode only names midjourney-proxy's speed; the path sent upstream is the plain
    `/mj/...` one (upstream collapses the mode segment)."""
    tasks = TaskRoutes(ctx)
    mj = [
        ("/submit/{action}", "mj_submit", tasks.mj_submit, "POST"),
        ("/insight-face/swap", "mj_submit", tasks.mj_submit, "POST"),
        ("/task/list-by-condition", "mj_fetch", tasks.mj_list, "POST"),
        ("/task/{id}/fetch", "mj_fetch", tasks.mj_fetch, "GET"),
        ("/task/{id}/image-seed", "mj_fetch", tasks.mj_image_seed, "GET"),
        ("/notify", "mj_notify", tasks.mj_notify, "POST"),
        ("/image/{id}", "mj_image", tasks.mj_image, "GET"),
    ]
    routes: list[BaseRoute] = []
    for path, metric, inner, method in mj:
        handler = _answered(metric, _mj_failure, inner)
        routes.append(Route(f"/mj{path}", handler, methods=[method]))
        routes.append(Route(f"/{{mode}}/mj{path}", _with_mode(handler), methods=[method]))
    others = [
        ("/suno/submit/{action}", "suno_submit", _suno_failure, tasks.suno_submit, "POST"),
        ("/suno/fetch", "suno_fetch", _suno_failure, tasks.suno_fetch, "POST"),
        ("/suno/fetch/{id}", "suno_fetch", _suno_failure, tasks.suno_fetch_one, "GET"),
        ("/v1/videos", "videos", _video_failure, tasks.video_create, "POST"),
        ("/v1/videos/{id}", "videos", _video_failure, tasks.video_retrieve, "GET"),
        ("/v1/videos/{id}/content", "videos", _video_failure, tasks.video_content, "GET"),
    ]
    for path, metric, failure, inner, method in others:
        routes.append(Route(path, _answered(metric, failure, inner), methods=[method]))
    return routes


def _with_mode(handler: Handler) -> Handler:
    async def handle(request: Request) -> Response:
        mode = request.path_params.get("mode")
        if mode not in tp.MODES:
            error = TaskError(404, tp.MJ_REQUEST_ERROR, f"unknown mode {mode!r}")
            return _mj_failure(error, new_request_id())
        return await handler(request)

    return handle
