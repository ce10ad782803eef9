"""The relay's request path, top to bottom (docs/architecture.md; upstream `controller/relay.go`).

    client format -> canonical request   steps.read_request (ingress/ for Anthropic, Gemini)
    key, access, sensitive words         steps.admit
    first channel                        steps.route_request
    hold at that channel's price         steps.hold (billing refuses what the wallet cannot pay)
    attempts and retries                 attempts.Attempts.serve
      canonical -> provider wire, call   call.UpstreamCall (adaptors/, upstream.py)
      provider wire -> canonical -> the client's format, streamed or not (ingress/ egress)
      meter and settle the hold once     settlement.settle (metering.py, usage.py)

A request that fails before the hold costs nothing; after it, the hold is either settled by
the answer or released (upstream failure, client gone, relay error), never both.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.relay import endpoints as ep
from services.relay.client import count
from services.relay.errors import RelayError, error_response
from services.relay.ids import new_request_id
from services.relay.ingress import Ingress
from services.relay.pipeline import steps
from services.relay.pipeline.attempts import Attempts
from services.relay.state import RelayContext


class Labels:
    """What the metrics and the access log say about one request (never the key itself)."""

    __slots__ = ("channel", "key_id", "model", "user_id")

    def __init__(self) -> None:
        self.model = ""
        self.channel = 0
        self.key_id = 0
        self.user_id = 0


class Pipeline:
    def __init__(self, ctx: RelayContext) -> None:
        self.ctx = ctx
        self.attempts = Attempts(ctx)

    async def handle(
        self,
        request: Request,
        endpoint: ep.Endpoint,
        path_model: str | None = None,
        ingress: Ingress | None = None,
    ) -> Response:
        """One relayed request: its answer, or its error in the client's format."""
        asked = steps.Asked(endpoint, path_model, ingress)
        asked.request_id = new_request_id()
        labels = Labels()
        try:
            response = await self._run(request, asked, labels)
        except RelayError as err:
            render = error_response if ingress is None else ingress.error_response
            response = render(err, asked.request_id)
        name = endpoint.name if ingress is None else ingress.name
        count(name, response.status_code, labels.model, labels.channel)
        request.state.access_fields = {
            "request_id": asked.request_id,
            "key_id": labels.key_id,
            "user_id": labels.user_id,
            "model": labels.model,
            "channel": labels.channel,
        }
        return response

    async def _run(self, request: Request, asked: steps.Asked, labels: Labels) -> Response:
        ctx = self.ctx
        table = steps.ready_table(ctx)
        options = table.options
        key = await steps.read_request_key(ctx, request, asked, options)
        req = await steps.read_request(ctx, request, asked)
        entry, ip = await steps.admit(ctx, request, key, req, options, asked.request_id)
        labels.key_id, labels.user_id = entry.token.id, entry.user.id
        route = steps.route_request(ctx, table, entry, req, key)
        if table.is_known_model(req.model):
            labels.model = req.model
        pinned = key.channel_id is not None
        job = await steps.hold(ctx, asked, req, entry, route, ip, pinned, options)
        try:
            response = await self.attempts.serve(job, route.channel)
        except BaseException:
            job.charge.release("relay error")
            raise
        labels.channel = job.tried[-1] if job.tried else 0
        return response
