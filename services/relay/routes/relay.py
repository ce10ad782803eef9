"""Every relayed endpoint (OpenAI's, and Anthropic's and Gemini's through ingress/): authenticate,
route, reserve, call upstream (retry), settle."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response
from veloera.accounts.v1 import accounts_pb2

from services.relay import endpoints as ep
from services.relay.auth import AuthEntry, check_token
from services.relay.charge import Charge
from services.relay.errorlog import error_entry
from services.relay.errors import REQUEST_ID_HEADER, RelayError, error_body, error_response
from services.relay.ids import new_request_id
from services.relay.incoming import ClientRequest, parse_form_request, parse_json_request
from services.relay.ingress import Ingress, anthropic
from services.relay.job import Job, resolve
from services.relay.metering import meter_request
from services.relay.metrics import ATTEMPT_FAILURES, RETRIES
from services.relay.options import RelayOptions
from services.relay.retry import map_status, retry_budget, should_retry, start_tier
from services.relay.routes.attempts import Attempts
from services.relay.routes.common import authorise, client_ip, count, read_body, read_key
from services.relay.routing import ChannelInfo
from services.relay.scrub import scrub
from services.relay.state import RelayContext
from services.relay.streaming import (
    DONE_FRAME,
    SSE_TYPE,
    WAIT_FRAME,
    PseudoStreamResponse,
    completion_to_chunks,
)
from services.relay.upstream import UpstreamFailure
from services.shared.numbers import ascii_int
from services.shared.sensitive import text_fields

logger = logging.getLogger(__name__)

T = TypeVar("T")
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
SATURATED = "upstream capacity for this group is saturated; try again later"


class Labels:
    """What the metrics and the access log say about one request (never the key itself)."""

    __slots__ = ("channel", "key_id", "model", "user_id")

    def __init__(self) -> None:
        self.model = ""
        self.channel = 0
        self.key_id = 0
        self.user_id = 0


def _check_origin(request: Request) -> None:
    origin = request.headers.get("origin", "")
    if "extension" in origin and "://" in origin:
        raise RelayError(
            403, "browser extensions are not allowed", code="browser_extension_blocked"
        )


def _rate_limit(entry: AuthEntry, options: RelayOptions) -> tuple[int, int, int]:
    token = entry.token
    if not token.rate_limit_enabled or options.rate_limit_exempt(entry.group):
        return (0, 0, 0)
    return (token.rate_limit_period, token.rate_limit_count, token.rate_limit_success)


class RelayRoute(Attempts):
    def __init__(self, ctx: RelayContext) -> None:
        self.ctx = ctx

    def handler(self, endpoint: ep.Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            return await self.handle(request, endpoint)

        return handle

    async def engine_embeddings(self, request: Request) -> Response:
        return await self.handle(request, ep.EMBEDDINGS, request.path_params["model"])

    async def messages(self, request: Request) -> Response:
        """Anthropic Messages, served as a chat request over any OpenAI-compatible channel."""
        return await self.handle(request, ep.CHAT, ingress=anthropic.INGRESS)

    async def count_tokens(self, request: Request) -> Response:
        """Anthropic's count_tokens: the relay's own prompt count (the one a request is held
        and, without upstream usage, billed by); no upstream call, no charge."""
        counter = Ingress("count_tokens", anthropic.parse_count, anthropic.error_response)
        return await self.count_prompt(request, counter, lambda n: {"input_tokens": n})

    async def count_prompt(
        self, request: Request, counter: Ingress, answer: Callable[[int], dict[str, int]]
    ) -> Response:
        """A format's token counting endpoint: `counter` parses the body into the chat
        request whose prompt is counted locally; `answer` shapes the count."""
        request_id = new_request_id()
        try:
            key = counter.read_key(request) if counter.read_key else read_key(request)
            raw = await read_body(request, self.ctx.settings.max_body_bytes)
            req = counter.parse(raw)
            await authorise(self.ctx, request, key, req.model)
            meter = await meter_request(self.ctx.media_http, req, self.ctx.media)
            response = Response(
                orjson.dumps(answer(meter.prompt_tokens)),
                headers={REQUEST_ID_HEADER: request_id},
                media_type="application/json",
            )
        except RelayError as err:
            response = counter.error_response(err, request_id)
        count(counter.name, response.status_code)
        return response

    async def handle(
        self,
        request: Request,
        endpoint: ep.Endpoint,
        path_model: str | None = None,
        ingress: Ingress | None = None,
    ) -> Response:
        started = time.perf_counter()
        request_id = new_request_id()
        labels = Labels()
        try:
            response = await self._handle(
                request, endpoint, path_model, request_id, started, labels, ingress
            )
        except RelayError as err:
            render = error_response if ingress is None else ingress.error_response
            response = render(err, request_id)
        name = endpoint.name if ingress is None else ingress.name
        count(name, response.status_code, labels.model, labels.channel)
        request.state.access_fields = {
            "request_id": request_id,
            "key_id": labels.key_id,
            "user_id": labels.user_id,
            "model": labels.model,
            "channel": labels.channel,
        }
        return response

    async def _read(
        self,
        request: Request,
        endpoint: ep.Endpoint,
        path_model: str | None,
        ingress: Ingress | None,
    ) -> ClientRequest:
        raw = await read_body(request, self.ctx.settings.max_body_bytes)
        if ingress is not None:
            return ingress.parse(raw)
        content_type = request.headers.get("content-type", "")
        if endpoint.multipart:
            return await parse_form_request(endpoint, raw, content_type)
        if content_type.lower().startswith(FORM_TYPES):
            raise RelayError(
                415,
                "this endpoint takes application/json",
                type_="invalid_request_error",
                code="unsupported_content_type",
            )
        return parse_json_request(endpoint, raw, path_model)

    async def _handle(
        self,
        request: Request,
        endpoint: ep.Endpoint,
        path_model: str | None,
        request_id: str,
        started: float,
        labels: Labels,
        ingress: Ingress | None,
    ) -> Response:
        ctx = self.ctx
        table = ctx.snapshot.table
        if table is None:
            raise RelayError(503, "routing is not ready", code="not_ready")
        options = table.options
        key = ingress.read_key(request) if ingress and ingress.read_key else read_key(request)
        if options.block_browser_extension and endpoint is ep.CHAT:
            _check_origin(request)
        if _large_body(request):
            # Nobody without a valid key makes the relay read (and hold) a large body; the
            # answer is cached, so the full check after the body costs nothing more.
            check_token(await ctx.auth.authenticate(key.key), time.time())
        req = await self._read(request, endpoint, path_model, ingress)
        ip = client_ip(request, options.reverse_proxy)
        entry = await authorise(ctx, request, key, req.model, ip)
        labels.key_id, labels.user_id = entry.token.id, entry.user.id
        if options.sensitive_applies(entry.group):
            hit = options.sensitive.find_in(text_fields(req.payload))
            if hit is not None:
                logger.info("sensitive words detected", extra={"request_id": request_id})
                raise RelayError(
                    400,
                    "sensitive words detected",
                    type_="invalid_request_error",
                    code="sensitive_words_detected",
                )
        virtual = options.global_mapping.get(req.model)
        target = ctx.virtual.pick(req.model, virtual) if virtual else None
        route = resolve(table, entry.group, req.model, key.channel_id, target)
        if table.is_known_model(req.model):
            labels.model = req.model
        meter = await meter_request(ctx.media_http, req, ctx.media)
        job = Job(
            request_id=request_id,
            started=started,
            entry=entry,
            req=req,
            options=options,
            meter=meter,
            routing_model=route.routing_model,
            client_ip=ip,
            pinned=key.channel_id is not None,
            charge=Charge(ctx.biller, request_id),
        )
        priced, _effort = self.upstream_model(job, route.channel)
        job.max_output = await ctx.biller.reserve(
            request_id=request_id,
            user_id=entry.user.id,
            token_id=entry.token.id,
            model=priced,
            group=entry.group,
            prompt_tokens=meter.prompt_tokens,
            max_tokens=req.max_tokens * req.choices,  # each answer may use max_tokens
            requested_model=req.model,
            accept_unpriced=entry.accept_unpriced,
            estimate=meter.estimate(endpoint.kind),
            rate_limit=_rate_limit(entry, options),
        )
        try:
            response = await self._serve(job, route.channel)
        except BaseException:
            job.charge.release("relay error")
            raise
        labels.channel = job.tried[-1] if job.tried else 0
        return response

    # ------------------------------------------------------------------ attempts

    async def _serve(self, job: Job, channel: ChannelInfo) -> Response:
        if job.stream and channel.setting.non_stream_only:
            return self._pseudo(job, channel)
        run = self.stream_attempt if job.stream else self.plain_attempt
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

    # ------------------------------------------------------------------ pseudo-stream

    def _pseudo(self, job: Job, channel: ChannelInfo) -> Response:
        # One form for every attempt: the frames chosen here (done, wait) are the chat form's.
        job.chat_only = True
        job.use_form(native=False)
        egress = job.req.egress

        async def produce() -> AsyncIterator[bytes]:
            result = await self._attempts(job, channel, self.plain_data)
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


def public_url(url: str) -> str:
    """A channel's base URL fit for logs: scheme, host, port and path, without user info or
    query (either may carry a credential)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else host


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


def _large_body(request: Request) -> bool:
    """A body above EARLY_AUTH_BYTES, or of unknown length (chunked)."""
    if request.method in ("GET", "HEAD", "DELETE"):
        return False
    declared = ascii_int(request.headers.get("content-length", ""))
    return declared is None or declared > EARLY_AUTH_BYTES
