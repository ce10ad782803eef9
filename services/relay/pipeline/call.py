"""One upstream attempt: the adaptor turns the canonical request into the provider's wire
format, the answer is read (or streamed) back through it, metered and settled; a failure is
scrubbed, counted, logged and reported to accounts before the attempts loop decides what next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import orjson
from starlette.responses import Response
from veloera.accounts.v1 import accounts_pb2

from services.relay import endpoints as ep
from services.relay.adaptors.base import (
    Adaptor,
    Outgoing,
    StreamConverter,
    Target,
    UpstreamRequest,
)
from services.relay.adaptors.native import ProviderError
from services.relay.billing.settlement import settle
from services.relay.incoming import Passthrough
from services.relay.ingress import anthropic, gemini
from services.relay.job import Job
from services.relay.metering.meter import usage_of_reply, usage_of_stream
from services.relay.metering.output_cap import OutputCap, cut_frames
from services.relay.metering.usage import bounded
from services.relay.metrics import ATTEMPT_FAILURES, FIRST_TOKEN_SECONDS, UPSTREAM_SECONDS
from services.relay.pipeline.native_stream import NativeStream
from services.relay.routing.retry import map_status
from services.relay.routing.table import ChannelInfo
from services.relay.state import RelayContext
from services.relay.upstream.http import (
    UPSTREAM_ERRORS,
    UpstreamFailure,
    failure_of,
    open_upstream,
    usable_proxy,
)
from services.relay.upstream.scrub import scrub
from services.relay.upstream.shaping import (
    apply_o_series,
    apply_param_override,
    apply_stream_options,
    apply_system_prompt,
    is_o_series,
    split_effort,
)
from services.relay.upstream.streaming import (
    DONE_FRAME,
    PING_FRAME,
    SSE_TYPE,
    SSEProcessor,
    SSEResponse,
    usage_chunk,
)
from services.relay.upstream.websocket import WebSocketAnswer, open_websocket

logger = logging.getLogger(__name__)
# How a channel's system prompt goes first in each format that passes through.
SYSTEM_PROMPTS = {"anthropic": anthropic.prepend_system, "gemini": gemini.prepend_system}


async def converted(
    chunks: AsyncIterator[bytes], converter: StreamConverter
) -> AsyncIterator[bytes]:
    """A provider's stream as OpenAI chunk frames; its error event before anything was relayed
    fails the attempt like a non-2xx answer would."""
    try:
        async for data in chunks:
            frames = converter.feed(data)
            if frames:
                yield frames
        rest = converter.finish()
        if rest:
            yield rest
    except ProviderError as exc:
        raise UpstreamFailure("status", exc.status, exc.message, error=exc.error) from None


class UpstreamCall:
    """Calls a channel once for a job: `plain` (read the answer) or `stream`."""

    def __init__(self, ctx: RelayContext) -> None:
        self.ctx = ctx

    def failed(
        self, job: Job, channel: ChannelInfo, key_id: int, exc: UpstreamFailure, sent: float
    ) -> UpstreamFailure:
        """Scrub, map the status, count, log and report one failed attempt; returns it to
        raise."""
        _scrub_failure(exc, channel)
        if exc.kind == "status":
            exc.status = map_status(channel.status_code_mapping, exc.status)
        ATTEMPT_FAILURES.labels(exc.kind, f"{exc.status // 100}xx").inc()
        logger.warning(
            "upstream attempt failed",
            extra={
                "request_id": job.request_id,
                "channel_id": channel.id,
                "status": exc.status,
                "kind": exc.kind,
                "base_url": public_url(channel.base_url),
                "error": exc.message[:500],  # scrubbed of keys and addresses above
            },
        )
        if key_id > 0:
            error = exc.error or {}
            self.ctx.report_failure(
                accounts_pb2.ReportChannelResultRequest(
                    channel_id=channel.id,
                    key_id=key_id,
                    success=False,
                    status_code=exc.status,
                    error_type=str(error.get("type") or ""),
                    error_code=str(error.get("code") or ""),
                    error_message=exc.message[:500],
                    latency_ms=int((time.perf_counter() - sent) * 1000),
                )
            )
        return exc

    # ------------------------------------------------------------------ request shaping

    @staticmethod
    def upstream_model(job: Job, channel: ChannelInfo) -> tuple[str, str]:
        """(upstream model, reasoning effort) after channel mapping and the effort suffix."""
        return split_effort(channel.upstream_model(job.routing_model))

    def outgoing(
        self,
        job: Job,
        channel: ChannelInfo,
        adaptor: Adaptor,
        model: str,
        effort: str,
        stream: bool,
    ) -> Outgoing:
        req = job.req
        if req.endpoint.multipart:
            fields = [(k, model if k == "model" else v) for k, v in req.fields]
            if not any(k == "model" for k, _ in fields):
                fields.append(("model", model))
            return Outgoing(fields=fields, files=req.files)
        if job.options.pass_through and stream == req.stream:  # not for pseudo-streams
            return Outgoing(raw=req.raw)
        body = dict(req.payload)
        body["model"] = model
        endpoint = req.endpoint
        if endpoint.chat:
            apply_system_prompt(body, channel.system_prompt)
            apply_o_series(body, model, effort)
        elif endpoint is ep.RESPONSES:
            if effort:
                reasoning = body.get("reasoning")
                body["reasoning"] = {**(reasoning if isinstance(reasoning, dict) else {})}
                body["reasoning"]["effort"] = effort
            body.pop("stream_options", None)
        if endpoint.streamable:
            body["stream"] = stream
            if endpoint is not ep.RESPONSES:
                apply_stream_options(
                    body,
                    stream=stream,
                    channel_type=channel.type,
                    supports=adaptor.supports_stream_options,
                    force=self.ctx.settings.force_stream_option,
                )
            if not stream and "stream" not in req.payload:
                body.pop("stream")
        apply_param_override(body, channel)
        return Outgoing(json=body)

    async def send(
        self,
        channel: ChannelInfo,
        adaptor: Adaptor,
        request: UpstreamRequest,
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse | WebSocketAnswer:
        """The open 2xx answer, through the channel's `setting.proxy` when it has one."""
        session, proxy = self.route(channel)
        if adaptor.transport == "websocket":
            idle = timeout.sock_read or timeout.total or self.ctx.settings.relay_timeout
            return await open_websocket(session, request, idle, proxy)
        return await open_upstream(session, request, timeout, proxy, adaptor.parse_error)

    def route(self, channel: ChannelInfo) -> tuple[aiohttp.ClientSession, str]:
        """The session (and per-request proxy) that reaches the channel, if it may be."""
        if channel.private_target and not self.ctx.settings.channel_private_addresses:
            raise UpstreamFailure("connection", 502, "the channel points at a private address")
        proxy = channel.setting.proxy
        if proxy and not usable_proxy(proxy):
            raise UpstreamFailure("connection", 502, "the channel's proxy cannot be used")
        return self.ctx.sessions.route(proxy)

    async def prepare(
        self, job: Job, channel: ChannelInfo, *, stream: bool
    ) -> tuple[Adaptor, Target, int, UpstreamRequest]:
        try:
            adaptor = self.ctx.adaptors.for_type(channel.type)
        except LookupError:  # routing skips these channels; never guess another format
            raise UpstreamFailure("connection", 502, "the channel's type has no adaptor") from None
        job.use_form(self.ctx.adaptors.speaks_responses(channel.type))
        model, effort = self.upstream_model(job, channel)
        if not effort and job.req.reasoning_effort and is_o_series(model):
            effort = job.req.reasoning_effort  # an ingress format's, e.g. Anthropic's thinking
        job.effort = effort
        key_id, key = self.ctx.keys.pick(channel)
        token = ""
        if adaptor.needs_token:  # a key exchanged for an access token first (Vertex, Baidu)
            asked = time.perf_counter()
            try:
                http, proxy = self.route(channel)
                token = await adaptor.access_token(key, channel.base_url, http, proxy)
            except ProviderError as exc:  # reported like a refusal (auto-disable sees a 401)
                failure = UpstreamFailure("status", exc.status, exc.message)
                raise self.failed(job, channel, key_id, failure, asked) from None
            except UpstreamFailure as exc:
                raise self.failed(job, channel, key_id, exc, asked) from None
        passthrough = job.req.passthrough
        native = passthrough is not None and passthrough.format == adaptor.native_format
        target = Target(
            channel,
            key,
            model,
            job.req.endpoint,
            stream,
            job.options.providers,
            token,
            native=native,
            native_headers=passthrough.headers if passthrough is not None and native else {},
        )
        if passthrough is not None and native:
            body = native_body(passthrough, channel)
        else:
            body = self.outgoing(job, channel, adaptor, model, effort, stream)
        try:
            request = adaptor.build_request(target, body)
        except ProviderError as exc:  # the channel's own setup, e.g. a key in the wrong shape
            failure = UpstreamFailure("status", exc.status, exc.message)
            raise self.failed(job, channel, key_id, failure, time.perf_counter()) from None
        return adaptor, target, key_id, request

    # ------------------------------------------------------------------ non-stream

    async def plain(self, job: Job, channel: ChannelInfo) -> Response:
        data, content_type = await self.plain_data(job, channel)
        return Response(data, 200, headers=job.overhead_headers(), media_type=content_type)

    async def plain_data(self, job: Job, channel: ChannelInfo) -> tuple[bytes, str]:
        """Call once without streaming, settle, return the body and its content type."""
        ctx = self.ctx
        adaptor, target, key_id, request = await self.prepare(job, channel, stream=False)
        sent = time.perf_counter()
        try:
            try:
                async with asyncio.timeout(ctx.settings.relay_timeout):
                    response = await self.send(channel, adaptor, request, ctx.plain_timeout)
                    try:
                        data = await response.read()
                    finally:
                        response.release()
                    if adaptor.polls:  # a task the provider finishes later (Ali's images)
                        http, proxy = self.route(channel)
                        data = await adaptor.poll(target, data, http, proxy)
            except ProviderError as exc:
                raise UpstreamFailure("status", exc.status, exc.message, error=exc.error) from None
            except (TimeoutError, *UPSTREAM_ERRORS) as exc:
                raise failure_of(exc) from None
            finally:
                _count_wait(job, sent)
            if not data.strip():
                raise UpstreamFailure("empty", 500, "upstream returned an empty response")
        except UpstreamFailure as exc:
            raise self.failed(job, channel, key_id, exc, sent) from None
        answered = data  # the provider's own answer: what a passthrough client gets
        try:
            data = adaptor.convert_response(target, data)
        except ProviderError as exc:  # an error inside a 2xx answer (Baidu, Tencent)
            failure = UpstreamFailure("status", exc.status, exc.message, error=exc.error)
            raise self.failed(job, channel, key_id, failure, sent) from None
        reply = None
        if not job.req.endpoint.binary:
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError:
                parsed = None
            reply = parsed if isinstance(parsed, dict) else None
        usage = usage_of_reply(job.req, job.meter, adaptor, reply, target.model)
        egress = job.req.egress
        if target.native:  # the client speaks the provider's format: its answer as it came
            data = answered
        elif egress is not None:  # the client speaks another format (ingress/)
            data = egress.reply(reply or {}, bounded(usage, job.max_output))
        logged = job.options.log_chat_content and reply is not None
        settle(
            job,
            channel,
            target.model,
            usage,
            first_response_ms=job.elapsed_ms(),
            interrupted=False,
            output=adaptor.reply_text(reply)[0] if logged and reply is not None else "",
        )
        if egress is not None:
            return data, "application/json"
        default_type = "application/octet-stream" if job.req.endpoint.binary else "application/json"
        return data, response.headers.get("content-type", default_type)

    # ------------------------------------------------------------------ stream

    async def stream(self, job: Job, channel: ChannelInfo) -> Response:
        ctx = self.ctx
        adaptor, target, key_id, request = await self.prepare(job, channel, stream=True)
        long = target.model.startswith(("o1", "o3"))
        timeout = ctx.long_stream_timeout if long else ctx.stream_timeout
        setting = channel.setting
        egress = job.req.egress
        translator = egress.stream(job.meter.prompt_tokens) if egress is not None else None
        error_frame = (
            (lambda message: egress.error_event(502, message, job.request_id))
            if egress is not None
            else None
        )

        def scrubbed(text: str) -> str:  # called only on an upstream error
            return scrub(text, [key for _id, key in channel.keys])

        converter = adaptor.stream_converter(target)
        processor: SSEProcessor
        if target.native and converter is not None and error_frame is not None:
            # The client speaks the provider's format: its events as they came.
            processor = NativeStream(adaptor, converter, error_event=error_frame, scrub=scrubbed)
            translator = converter = None
        else:
            processor = SSEProcessor(
                adaptor,
                include_usage=job.req.include_usage,
                force_format=setting.force_format,
                thinking_to_content=setting.thinking_to_content,
                keep_events=job.req.endpoint is ep.RESPONSES,
                cap=OutputCap(job.max_output, target.model) if job.max_output > 0 else None,
                egress=translator,
                scrub=scrubbed,
                error_frame=error_frame,
            )
        sent = time.perf_counter()
        response: aiohttp.ClientResponse | WebSocketAnswer | None = None
        try:
            try:
                response = await self.send(channel, adaptor, request, timeout)
                chunks: AsyncIterator[bytes] = response.content.iter_any()
                if converter is not None:  # a provider streaming its own format
                    chunks = converted(chunks, converter)
                initial = b""
                # Read until the first frame, so an empty stream can still go elsewhere.
                while not initial:
                    try:
                        data = await anext(chunks)
                    except StopAsyncIteration:
                        initial = processor.finish()
                        if not initial:
                            raise UpstreamFailure(
                                "empty", 500, "upstream returned an empty stream"
                            ) from None
                        break
                    initial = processor.feed(data)
            except (TimeoutError, *UPSTREAM_ERRORS) as exc:
                raise failure_of(exc) from None
            finally:
                _count_wait(job, sent)
        except UpstreamFailure as exc:
            if response is not None:
                response.release()
            raise self.failed(job, channel, key_id, exc, sent) from None
        if processor.first_at is not None:
            FIRST_TOKEN_SECONDS.observe(processor.first_at - job.started)
        meter = job.meter

        def tail(proc: SSEProcessor) -> bytes:
            if translator is not None:  # the client's format closes the stream its own way
                usage = bounded(usage_of_stream(proc.acc, meter, target.model), job.max_output)
                return translator.end(usage, cut=proc.cut)
            wants_usage = job.req.include_usage and proc.acc.usage is None
            if not proc.cut and not wants_usage:
                return b""
            usage = bounded(usage_of_stream(proc.acc, meter, target.model), job.max_output)
            ending = b""
            if proc.cut:
                meta = proc.acc.first_chunk_meta
                ending = cut_frames(meta, job.req.choices, text=proc.acc.text, usage=usage)
            if not wants_usage:
                return ending
            return ending + usage_chunk(
                proc.acc.first_chunk_meta or {},
                {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                },
            )

        def finish(proc: SSEProcessor, interrupted: bool) -> None:
            first_ms = int((proc.first_at - job.started) * 1000) if proc.first_at else 0
            settle(
                job,
                channel,
                target.model,
                usage_of_stream(proc.acc, meter, target.model),
                first_response_ms=first_ms,
                interrupted=interrupted,
                output=proc.acc.text if job.options.log_chat_content else "",
            )

        options = job.options
        return SSEResponse(
            chunks,
            response.release,
            processor,
            headers=job.overhead_headers(),
            on_finish=finish,
            tail=tail,
            ping_seconds=options.ping_seconds if options.ping_enabled else None,
            initial=initial,
            done_frame=DONE_FRAME if egress is None else egress.done_frame,
            ping_frame=PING_FRAME if egress is None else egress.ping_frame,
            error_frame=error_frame,
            media_type=SSE_TYPE if egress is None else egress.media_type,
        )


def native_body(passthrough: Passthrough, channel: ChannelInfo) -> Outgoing:
    """A client's body in the provider's own format, with the channel's system prompt first
    and its parameter override applied (what the chat form gets too)."""
    native = dict(passthrough.body)  # streaming is the adaptor's to say (a field, or the URL)
    if channel.system_prompt:
        SYSTEM_PROMPTS[passthrough.format](native, channel.system_prompt)
    apply_param_override(native, channel)
    return Outgoing(json=native)


def public_url(url: str) -> str:
    """A channel's base URL fit for logs: scheme, host, port and path, without user info or
    query (either may carry a credential)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else host


def _count_wait(job: Job, sent: float) -> None:
    """The time one attempt waited on its upstream, in the job's total and the histogram."""
    waited = time.perf_counter() - sent
    job.upstream_wait += waited
    UPSTREAM_SECONDS.observe(waited)


def _scrub_failure(failure: UpstreamFailure, channel: ChannelInfo) -> None:
    """The channel's keys and every address out of what the upstream said (its message and the
    error object's fields the client sees), before anyone reads it."""
    secrets = [key for _id, key in channel.keys]
    failure.message = scrub(failure.message, secrets)
    error = failure.error
    if error:
        failure.error = {
            name: scrub(value, secrets) if isinstance(value, str) else value
            for name, value in error.items()
            if name in ("type", "code", "param")
        }


EARLY_AUTH_BYTES = 64 * 1024
