"""`/v1/realtime`: OpenAI's Realtime API, a websocket proxied to the channel
(pipeline/realtime.py)."""

from __future__ import annotations

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from services.relay.pipeline import realtime
from services.relay.state import RelayContext


def realtime_routes(ctx: RelayContext, prefix: str) -> list[BaseRoute]:
    async def session(websocket: WebSocket) -> None:
        await realtime.serve(ctx, websocket)

    return [WebSocketRoute(f"{prefix}/v1/realtime", session)]
