"""The steps of the request path before the first upstream call (upstream
`middleware/auth.go`, `middleware/distributor.go`, `relay/relay-text.go`): read the client's
request in its format, admit it (key, access, sensitive words), route it, hold its price."""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from veloera.billing.v1 import billing_pb2

from services.relay import endpoints as ep
from services.relay.auth import AuthEntry, ParsedKey, check_token
from services.relay.billing.charge import Charge
from services.relay.client import authorise, client_ip, read_body, read_key
from services.relay.errors import RelayError
from services.relay.incoming import ClientRequest, parse_form_request, parse_json_request
from services.relay.ingress import Ingress
from services.relay.job import Job, Route, resolve
from services.relay.metering.meter import meter_request
from services.relay.options import RelayOptions
from services.relay.routing.table import RoutingTable
from services.relay.state import RelayContext
from services.relay.upstream.shaping import split_effort
from services.shared.numbers import ascii_int
from services.shared.sensitive import text_fields

logger = logging.getLogger(__name__)

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
EARLY_AUTH_BYTES = 64 * 1024


class Asked:
    """What the route knows before reading the body: the endpoint, the model in the path
    (`/v1/engines/{model}/embeddings`) and the client's format when it is not OpenAI's."""

    __slots__ = ("endpoint", "ingress", "path_model", "request_id", "started")

    def __init__(
        self, endpoint: ep.Endpoint, path_model: str | None, ingress: Ingress | None
    ) -> None:
        self.endpoint = endpoint
        self.path_model = path_model
        self.ingress = ingress
        self.started = time.perf_counter()
        self.request_id = ""


def ready_table(ctx: RelayContext) -> RoutingTable:
    table = ctx.snapshot.table
    if table is None:
        raise RelayError(503, "routing is not ready", code="not_ready")
    return table


async def read_request_key(
    ctx: RelayContext, request: Request, asked: Asked, options: RelayOptions
) -> ParsedKey:
    """The key, read the client format's way; a large body is read only for a valid one."""
    ingress = asked.ingress
    key = ingress.read_key(request) if ingress and ingress.read_key else read_key(request)
    if options.block_browser_extension and asked.endpoint is ep.CHAT:
        _check_origin(request)
    if _large_body(request):
        # Nobody without a valid key makes the relay read (and hold) a large body; the
        # answer is cached, so the full check after the body costs nothing more.
        check_token(await ctx.auth.authenticate(key.key), time.time())
    return key


async def read_request(ctx: RelayContext, request: Request, asked: Asked) -> ClientRequest:
    """The body as the canonical request: an ingress format's own parser, a form, or JSON."""
    raw = await read_body(request, ctx.settings.max_body_bytes)
    if asked.ingress is not None:
        return asked.ingress.parse(raw)
    endpoint = asked.endpoint
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
    return parse_json_request(endpoint, raw, asked.path_model)


async def admit(
    ctx: RelayContext,
    request: Request,
    key: ParsedKey,
    req: ClientRequest,
    options: RelayOptions,
    request_id: str,
) -> tuple[AuthEntry, str]:
    """(the key's owner and group, the client address) once the key may ask for the model
    from this address and the request carries no sensitive word."""
    ip = client_ip(request, options.reverse_proxy, ctx.settings.trusted_proxies)
    entry = await authorise(ctx, request, key, req.model, ip)
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
    return entry, ip


def route_request(
    ctx: RelayContext, table: RoutingTable, entry: AuthEntry, req: ClientRequest, key: ParsedKey
) -> Route:
    """The first channel: pinned, prefixed, virtually mapped or picked by priority and weight."""
    virtual = table.options.global_mapping.get(req.model)
    target = ctx.virtual.pick(req.model, virtual) if virtual else None
    return resolve(table, entry.group, req.model, key.channel_id, target)


async def hold(
    ctx: RelayContext,
    asked: Asked,
    req: ClientRequest,
    entry: AuthEntry,
    route: Route,
    ip: str,
    pinned: bool,
    options: RelayOptions,
) -> Job:
    """Count the prompt and hold the request's most expensive outcome at the first channel's
    price (billing refuses what the wallet cannot pay); the job carries the hold."""
    meter = await meter_request(ctx.media_http, req, ctx.media)
    job = Job(
        request_id=asked.request_id,
        started=asked.started,
        entry=entry,
        req=req,
        options=options,
        meter=meter,
        routing_model=route.routing_model,
        client_ip=ip,
        pinned=pinned,
        charge=Charge(ctx.biller, asked.request_id),
    )
    priced, _effort = split_effort(route.channel.upstream_model(route.routing_model))
    job.max_output = await ctx.biller.reserve(
        request_id=asked.request_id,
        user_id=entry.user.id,
        token_id=entry.token.id,
        model=priced,
        group=entry.group,
        prompt_tokens=meter.prompt_tokens,
        max_tokens=req.max_tokens * req.choices,  # each answer may use max_tokens
        requested_model=req.model,
        accept_unpriced=entry.accept_unpriced,
        estimate=meter.estimate(asked.endpoint.kind),
        rate_limit=_rate_limit(entry, options),
    )
    return job


def _check_origin(request: Request) -> None:
    origin = request.headers.get("origin", "")
    if "extension" in origin and "://" in origin:
        raise RelayError(
            403, "browser extensions are not allowed", code="browser_extension_blocked"
        )


def _rate_limit(entry: AuthEntry, options: RelayOptions) -> billing_pb2.RateLimit | None:
    """The key's own rate limit for billing to count, unless off or the group is exempt."""
    limit = entry.token.rate_limit
    if not limit.enabled or options.rate_limit_exempt(entry.group):
        return None
    return billing_pb2.RateLimit(
        period_ms=limit.period_ms, count=limit.count, success=limit.success
    )


def _large_body(request: Request) -> bool:
    """A body above EARLY_AUTH_BYTES, or of unknown length (chunked)."""
    if request.method in ("GET", "HEAD", "DELETE"):
        return False
    declared = ascii_int(request.headers.get("content-length", ""))
    return declared is None or declared > EARLY_AUTH_BYTES
