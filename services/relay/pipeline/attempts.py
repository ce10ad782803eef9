"""The attempts of one request: the first channel, then retries on others while the failure
is worth retrying (upstream `controller/relay.go`); channels that answer only without
streaming get a pseudo-stream; the last failure goes back in the client's format.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import orjson
from starlette.responses import Response

from services.relay.errorlog import error_entry
from services.relay.errors import error_body
from services.relay.job import Job
from services.relay.metrics import RETRIES
from services.relay.pipeline.call import UpstreamCall
from services.relay.routing.retry import retry_budget, should_retry, start_tier
from services.relay.routing.table import ChannelInfo
from services.relay.state import RelayContext
from services.relay.upstream.http import UpstreamFailure
from services.relay.upstream.streaming import (
    DONE_FRAME,
    SSE_TYPE,
    WAIT_FRAME,
    PseudoStreamResponse,
    completion_to_chunks,
)

T = TypeVar("T")
SATURATED = "upstream capacity for this group is saturated; try again later"


class Attempts:
    def __init__(self, ctx: RelayContext) -> None:
        self.ctx = ctx
        self.call = UpstreamCall(ctx)

    async def serve(self, job: Job, channel: ChannelInfo) -> Response:
        """The answer: the first that succeeds, or the last failure in the client's format."""
        if job.stream and channel.setting.non_stream_only:
            return self.pseudo(job, channel)
        run = self.call.stream if job.stream else self.call.plain
        result = await self._attempts(job, channel, run)
        if isinstance(result, UpstreamFailure):
            job.charge.release("upstream failed")
            return self._failure_response(job, result)
        return result

    async def _attempts(
        self,
        job: Job,
        channel: ChannelInfo,
        run: Callable[[Job, ChannelInfo], Awaitable[T]],
    ) -> T | UpstreamFailure:
        ctx, options = self.ctx, job.options
        budget = retry_budget(options, ctx.settings.retry_count, pinned=job.pinned)
        failure: UpstreamFailure | None = None
        for attempt in range(budget + 1):
            if attempt:
                table = ctx.snapshot.table
                following = (
                    table.select(
                        job.entry.group,
                        job.routing_model,
                        job.tried,
                        start_tier=start_tier(options, attempt),
                    )
                    if table is not None
                    else None
                )
                if following is None:
                    break
                channel = following
                RETRIES.inc()
            job.tried.append(channel.id)
            job.last_channel = channel
            try:
                return await run(job, channel)
            except UpstreamFailure as exc:
                failure = exc
                if not should_retry(options, exc.status, empty=exc.kind == "empty"):
                    break
        assert failure is not None, "no attempt was made"
        return failure

    def _failure_response(self, job: Job, failure: UpstreamFailure) -> Response:
        error = failure.error or {}
        status = failure.status
        message = failure.message
        if failure.kind == "timeout":
            type_, code = "upstream_error", "upstream_timeout"
        elif failure.kind == "connection":
            type_, code = "upstream_error", "upstream_unreachable"
        elif failure.kind == "empty":
            type_, code = "upstream_error", "empty_response"
        else:
            type_ = str(error.get("type") or "upstream_error")
            code = str(error.get("code") or "bad_response_status_code")
        if status == 429:
            message = SATURATED
        elif job.options.hide_upstream_error and failure.kind == "status":
            message = f"Upstream error with status code {status}"
            type_, code = "upstream_error", "bad_response_status_code"
        self._log_error(job, status, type_, code, message)
        if job.req.egress is not None:
            return job.req.egress.error(status, message, job.request_id, job.overhead_headers())
        param = error.get("param")
        body = error_body(
            message,
            type_=type_,
            code=code,
            request_id=job.request_id,
            param=param if isinstance(param, str) else None,
        )
        return Response(body, status, headers=job.overhead_headers(), media_type="application/json")

    def _log_error(self, job: Job, status: int, type_: str, code: str, message: str) -> None:
        """A type-6 log row for the failed request, when LogErrorEnabled (never waited on)."""
        if job.options.log_error:
            self.ctx.write_log(
                error_entry(
                    job, job.last_channel, status=status, type_=type_, code=code, message=message
                )
            )

    def pseudo(self, job: Job, channel: ChannelInfo) -> Response:
        # One form for every attempt: the frames chosen here (done, wait) are the chat form's.
        job.chat_only = True
        job.use_form(native=False)
        egress = job.req.egress

        async def produce() -> AsyncIterator[bytes]:
            result = await self._attempts(job, channel, self.call.plain_data)
            if isinstance(result, UpstreamFailure):
                job.charge.release("upstream failed")
                error = {"message": result.message, "type": "upstream_error", "code": None}
                self._log_error(job, result.status, "upstream_error", "", result.message)
                if egress is not None:
                    yield egress.error_event(result.status, result.message, job.request_id)
                    return
                yield b"data: " + orjson.dumps({"error": error}) + b"\n\n"
                return
            data, _content_type = result
            if egress is not None:  # plain_data already answered in the client's format
                yield egress.replay(data)
                return
            try:
                reply = orjson.loads(data)
            except orjson.JSONDecodeError:
                reply = None
            if isinstance(reply, dict):
                yield completion_to_chunks(reply, include_usage=job.req.include_usage)

        return PseudoStreamResponse(
            produce,
            headers=job.overhead_headers(),
            wait_seconds=self.ctx.settings.pseudo_stream_wait_seconds,
            on_cancel=lambda: job.charge.release("client left"),
            done_frame=DONE_FRAME if egress is None else egress.done_frame,
            wait_frame=WAIT_FRAME if egress is None else egress.wait_frame,
            media_type=SSE_TYPE if egress is None else egress.media_type,
        )
