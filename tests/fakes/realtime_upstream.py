"""A fake OpenAI Realtime API (`wss://.../v1/realtime?model=...`) on loopback, speaking its
event protocol: `session.created` on connect; `session.update` -> `session.updated`;
`response.create` -> `response.created`, two `response.output_text.delta`, one
`response.output_audio.delta`, and `response.done` carrying usage split into text, audio and
cached tokens; a binary frame comes back as it went; `fake.close` closes with code 4000.
Without `Authorization: Bearer` it refuses the handshake (403), as OpenAI does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes.loopback import LoopbackServer

DELTAS = ("Hello ", "there!")
USAGE: dict[str, Any] = {
    "total_tokens": 30,
    "input_tokens": 20,
    "output_tokens": 10,
    "input_token_details": {"cached_tokens": 0, "text_tokens": 12, "audio_tokens": 8},
    "output_token_details": {"text_tokens": 4, "audio_tokens": 6},
}


@dataclass
class FakeRealtime(LoopbackServer):
    sessions: list[dict[str, Any]] = field(default_factory=list)  # handshake headers and query
    received: list[str] = field(default_factory=list)  # event types the clients sent

    def app(self) -> Starlette:
        return Starlette(routes=[WebSocketRoute("/v1/realtime", self._session)])

    async def _session(self, websocket: WebSocket) -> None:
        auth = websocket.headers.get("authorization", "")
        self.sessions.append(
            {"authorization": auth, "model": websocket.query_params.get("model", "")}
        )
        if not auth.startswith("Bearer "):
            await websocket.close(1008)
            return
        await websocket.accept()
        serial = 0

        async def send(kind: str, **data: Any) -> None:
            nonlocal serial
            serial += 1
            event = {"type": kind, "event_id": f"event_{serial}", **data}
            await websocket.send_text(orjson.dumps(event).decode())

        await send("session.created", session={"id": "sess_fake", "model": "fake"})
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    await websocket.send_bytes(message["bytes"])
                    continue
                event = orjson.loads(message.get("text") or "{}")
                kind = event.get("type", "")
                self.received.append(kind)
                if kind == "session.update":
                    await send("session.updated", session=event.get("session", {}))
                elif kind == "response.create":
                    await self._respond(send, serial)
                elif kind == "fake.close":
                    await websocket.close(4000)
                    return
        except WebSocketDisconnect:
            return

    @staticmethod
    async def _respond(send: Any, serial: int) -> None:
        response_id = f"resp_{serial}"
        await send("response.created", response={"id": response_id, "status": "in_progress"})
        for delta in DELTAS:
            await send("response.output_text.delta", response_id=response_id, delta=delta)
        await send("response.output_audio.delta", response_id=response_id, delta="UklGRg==")
        response = {"id": response_id, "status": "completed", "usage": USAGE}
        await send("response.done", response=response)
