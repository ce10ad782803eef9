"""The relayed endpoints (OpenAI's, and Anthropic's and Gemini's through ingress/): each is one
call into the request pipeline (services/relay/pipeline), except the token counters, which
answer from the relay's own count."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from services.relay import endpoints as ep
from services.relay.client import authorise, count, read_body, read_key
from services.relay.errors import REQUEST_ID_HEADER, RelayError
from services.relay.ids import new_request_id
from services.relay.ingress import Ingress, anthropic
from services.relay.metering.meter import meter_request
from services.relay.pipeline import Pipeline
from services.relay.state import RelayContext


class RelayRoute:
    def __init__(self, ctx: RelayContext) -> None:
        self.ctx = ctx
        self.pipeline = Pipeline(ctx)
        self.handle = self.pipeline.handle

    def handler(self, endpoint: ep.Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            return await self.handle(request, endpoint)

        return handle

    async def engine_embeddings(self, request: Request) -> Response:
        return await self.handle(request, ep.EMBEDDINGS, request.path_params["model"])

    async def messages(self, request: Request) -> Response:
        """Anthropic Messages: as it came to Anthropic channels, as chat to any other."""
        return await self.handle(request, ep.CHAT, ingress=anthropic.ingress(request))

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
