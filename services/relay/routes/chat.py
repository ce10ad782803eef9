"""POST /v1/chat/completions: authenticate, route, reserve, call upstream (retry), settle."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response
from veloera.billing.v1 import billing_pb2

from services.relay.adaptors import adaptor_for
from services.relay.adaptors.base import Adaptor, UsageCounts
from services.relay.auth import AuthEntry
from services.relay.errors import REQUEST_ID_HEADER, RelayError, error_body, error_response
from services.relay.ids import new_request_id
from services.relay.metrics import OVERHEAD_SECONDS, RETRIES, UPSTREAM_SECONDS
from services.relay.routes.common import authorise, client_ip, count, read_body, read_key
from services.relay.routing import ChannelInfo, RoutingTable
from services.relay.state import RelayContext
from services.relay.streaming import SSEProcessor, SSEResponse, usage_chunk
from services.relay.tokens import estimate_completion_tokens, estimate_prompt_tokens
from services.relay.upstream import UpstreamFailure, open_upstream

logger = logging.getLogger(__name__)

OVERHEAD_HEADER = "X-Veloera-Overhead-Ms"
MAX_TOKENS_LIMIT = 1 << 30


def bad_request(message: str, param: str | None = None) -> RelayError:
    return RelayError(
        400, message, type_="invalid_request_error", code="invalid_request", param=param
    )


def parse_chat_body(raw: bytes) -> tuple[dict[str, Any], str, list[Any]]:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise bad_request("request body must be a JSON object")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model is required", "model")
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages is required", "messages")
    return payload, model, messages


def requested_max_tokens(payload: dict[str, Any]) -> int:
    values = [payload.get("max_tokens"), payload.get("max_completion_tokens")]
    numbers = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    best = max(numbers, default=0)
    if best < 0 or best >= MAX_TOKENS_LIMIT:
        raise bad_request("max_tokens is invalid", "max_tokens")
    return best


def no_channel(model: str, group: str) -> RelayError:
    return RelayError(
        503,
        f"no available channel for model {model} in group {group}",
        code="no_available_channel",
    )


def first_channel(
    table: RoutingTable, entry: AuthEntry, model: str, pinned: int | None
) -> ChannelInfo:
    if pinned is not None:
        channel = table.pinned(pinned)
        if channel is None:
            raise RelayError(
                403, f"channel {pinned} does not exist or is disabled", code="channel_unavailable"
            )
        return channel
    channel = table.select(entry.group, model)
    if channel is None:
        raise no_channel(model, entry.group)
    return channel


@dataclass(slots=True)
class ChatJob:
    """The state of one chat request across its attempts."""

    request_id: str
    started: float
    entry: AuthEntry
    model: str
    payload: dict[str, Any]
    stream: bool
    include_usage: bool  # the client asked for stream usage itself
    prompt_tokens: int
    client_ip: str
    pinned: bool
    tried: list[int] = field(default_factory=list)
    upstream_wait: float = 0.0

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)

    def overhead_headers(self) -> dict[str, str]:
        overhead = max(time.perf_counter() - self.started - self.upstream_wait, 0.0)
        OVERHEAD_SECONDS.observe(overhead)
        return {REQUEST_ID_HEADER: self.request_id, OVERHEAD_HEADER: f"{overhead * 1000:.3f}"}


class ChatRoute:
    def __init__(self, ctx: RelayContext) -> None:
        self.ctx = ctx

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        request_id = new_request_id()
        try:
            response = await self._handle(request, request_id, started)
        except RelayError as err:
            response = error_response(err, request_id)
        count("chat", response.status_code)
        return response

    async def _handle(self, request: Request, request_id: str, started: float) -> Response:
        ctx = self.ctx
        key = read_key(request)
        raw = await read_body(request, ctx.settings.max_body_bytes)
        payload, model, messages = parse_chat_body(raw)
        max_tokens = requested_max_tokens(payload)
        entry = await authorise(ctx, request, key, model)
        table = ctx.snapshot.table
        if table is None:
            raise RelayError(503, "routing is not ready", code="not_ready")
        channel = first_channel(table, entry, model, key.channel_id)
        stream = payload.get("stream") is True
        options = payload.get("stream_options")
        job = ChatJob(
            request_id=request_id,
            started=started,
            entry=entry,
            model=model,
            payload=payload,
            stream=stream,
            include_usage=stream
            and isinstance(options, dict)
            and options.get("include_usage") is True,
            prompt_tokens=estimate_prompt_tokens(messages),
            client_ip=client_ip(request),
            pinned=key.channel_id is not None,
        )
        await ctx.biller.reserve(
            request_id=request_id,
            user_id=entry.user.id,
            token_id=entry.token.id,
            model=channel.upstream_model(model),
            group=entry.group,
            prompt_tokens=job.prompt_tokens,
            max_tokens=max_tokens,
        )
        try:
            return await self._serve(job, channel)
        except BaseException:
            ctx.biller.release_later(request_id, "relay error")
            raise

    async def _serve(self, job: ChatJob, channel: ChannelInfo) -> Response:
        ctx = self.ctx
        attempts = 1 if job.pinned else 1 + max(ctx.settings.retry_count, 0)
        failure: UpstreamFailure | None = None
        for attempt in range(attempts):
            if attempt:
                table = ctx.snapshot.table
                next_channel = (
                    table.select(job.entry.group, job.model, job.tried) if table else None
                )
                if next_channel is None:
                    break
                channel = next_channel
                RETRIES.inc()
            job.tried.append(channel.id)
            adaptor = adaptor_for(channel.type)
            try:
                if job.stream:
                    return await self._stream(job, channel, adaptor)
                return await self._plain(job, channel, adaptor)
            except UpstreamFailure as exc:
                failure = exc
                logger.warning(
                    "upstream attempt failed",
                    extra={
                        "request_id": job.request_id,
                        "channel_id": channel.id,
                        "status": exc.status,
                        "kind": exc.kind,
                    },
                )
                if not exc.retryable:
                    break
        assert failure is not None, "no attempt was made"
        self.ctx.biller.release_later(job.request_id, "upstream failed")
        return self._failure_response(job, failure)

    def _failure_response(self, job: ChatJob, failure: UpstreamFailure) -> Response:
        error = failure.error or {}
        if failure.kind == "status" and failure.status < 500:
            status, type_ = failure.status, str(error.get("type") or "upstream_error")
            code = error.get("code") or "bad_response_status_code"
        elif failure.kind == "timeout":
            status, type_, code = 504, "upstream_error", "upstream_timeout"
        else:
            status, type_ = 502, "upstream_error"
            code = error.get("code") or (
                "bad_response_status_code" if failure.kind == "status" else "upstream_unreachable"
            )
        param = error.get("param")
        body = error_body(
            failure.message,
            type_=type_,
            code=str(code),
            request_id=job.request_id,
            param=param if isinstance(param, str) else None,
        )
        return Response(body, status, headers=job.overhead_headers(), media_type="application/json")

    def _upstream_request(
        self, job: ChatJob, channel: ChannelInfo, adaptor: Adaptor
    ) -> tuple[str, Any]:
        upstream_model = channel.upstream_model(job.model)
        body = dict(job.payload)
        body["model"] = upstream_model
        if not job.stream or not adaptor.supports_stream_options:
            body.pop("stream_options", None)
        elif self.ctx.settings.force_stream_option:
            options = body.get("stream_options")
            merged = dict(options) if isinstance(options, dict) else {}
            merged["include_usage"] = True
            body["stream_options"] = merged
        _key_id, key = self.ctx.keys.pick(channel)
        return upstream_model, adaptor.build_request(channel, key, body, stream=job.stream)

    async def _plain(self, job: ChatJob, channel: ChannelInfo, adaptor: Adaptor) -> Response:
        upstream_model, request = self._upstream_request(job, channel, adaptor)
        sent = time.perf_counter()
        try:
            async with asyncio.timeout(self.ctx.settings.relay_timeout):
                response = await open_upstream(self.ctx.http, request, self.ctx.plain_timeout)
                try:
                    data = await response.aread()
                finally:
                    await response.aclose()
        except TimeoutError:
            raise UpstreamFailure("timeout", 504, "upstream timed out") from None
        except httpx.TimeoutException:
            raise UpstreamFailure("timeout", 504, "upstream timed out") from None
        except httpx.HTTPError as exc:
            raise UpstreamFailure(
                "connection", 502, f"upstream connection failed: {type(exc).__name__}"
            ) from None
        finally:
            waited = time.perf_counter() - sent
            job.upstream_wait += waited
            UPSTREAM_SECONDS.observe(waited)
        usage = self._plain_usage(job, adaptor, data)
        headers = job.overhead_headers()
        self._settle(
            job,
            channel,
            upstream_model,
            usage,
            first_response_ms=job.elapsed_ms(),
            interrupted=False,
        )
        content_type = response.headers.get("content-type", "application/json")
        return Response(data, 200, headers=headers, media_type=content_type)

    def _plain_usage(self, job: ChatJob, adaptor: Adaptor, data: bytes) -> UsageCounts:
        try:
            reply = orjson.loads(data)
        except orjson.JSONDecodeError:
            reply = None
        if not isinstance(reply, dict):
            return UsageCounts(prompt_tokens=job.prompt_tokens, estimated=True)
        if adaptor.reply_is_empty(reply):
            return UsageCounts()
        usage = adaptor.parse_usage(reply)
        if usage is not None:
            return usage
        completion = estimate_completion_tokens(adaptor.reply_chars(reply))
        return UsageCounts(job.prompt_tokens, completion, estimated=True)

    async def _stream(self, job: ChatJob, channel: ChannelInfo, adaptor: Adaptor) -> Response:
        upstream_model, request = self._upstream_request(job, channel, adaptor)
        sent = time.perf_counter()
        try:
            response = await open_upstream(self.ctx.http, request, self.ctx.stream_timeout)
        finally:
            waited = time.perf_counter() - sent
            job.upstream_wait += waited
            UPSTREAM_SECONDS.observe(waited)
        processor = SSEProcessor(adaptor, include_usage=job.include_usage)

        def stream_usage(proc: SSEProcessor) -> UsageCounts:
            acc = proc.acc
            if not acc.has_text and acc.tool_calls == 0:
                return UsageCounts()
            if acc.usage is not None:
                return acc.usage
            completion = estimate_completion_tokens(acc.text_chars, acc.tool_calls)
            return UsageCounts(job.prompt_tokens, completion, estimated=True)

        def tail(proc: SSEProcessor) -> bytes:
            if not job.include_usage or proc.acc.usage is not None:
                return b""
            usage = stream_usage(proc)
            return usage_chunk(
                proc.acc.first_chunk_meta or {},
                {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                },
            )

        def finish(proc: SSEProcessor, interrupted: bool) -> None:
            first_ms = int((proc.first_at - job.started) * 1000) if proc.first_at else 0
            self._settle(
                job,
                channel,
                upstream_model,
                stream_usage(proc),
                first_response_ms=first_ms,
                interrupted=interrupted,
            )

        return SSEResponse(
            response, processor, headers=job.overhead_headers(), on_finish=finish, tail=tail
        )

    def _settle(
        self,
        job: ChatJob,
        channel: ChannelInfo,
        upstream_model: str,
        usage: UsageCounts,
        *,
        first_response_ms: int,
        interrupted: bool,
    ) -> None:
        entry = job.entry
        request = billing_pb2.SettleRequest(
            request_id=job.request_id,
            usage=billing_pb2.Usage(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                estimated=usage.estimated,
            ),
            username=entry.user.username,
            token_name=entry.token.name,
            model_name=job.model,
            upstream_model=upstream_model,
            channel_id=channel.id,
            channel_name=channel.name,
            is_stream=job.stream,
            elapsed_ms=job.elapsed_ms(),
            first_response_ms=first_response_ms,
            channels_tried=job.tried,
            client_ip=job.client_ip if entry.log_ip else "",
            interrupted=interrupted,
        )
        self.ctx.biller.settle_later(request)
