"""A fake iFlytek Spark chat API (`wss://.../{version}/chat`) on loopback, speaking its
websocket protocol: one request frame in (`header.app_id`, `parameter.chat.domain`,
`payload.message.text`), answer frames out (`payload.choices.text` pieces, the last with
`header.status` 2 and `payload.usage.text`), errors as a frame with a non-zero `header.code`.

Like the real API it checks the URL's HMAC-SHA256 `authorization` against the API secret it
knows for the API key (a refused handshake: 401), and the domain against the version in the
path (error 10404). A last user message `fail-<code>` answers that error code; with
`payload.functions` it answers a function call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from tests.fakes.loopback import LoopbackServer

REPLY = "你好，我是讯飞星火。"
DOMAINS = {"v1.1": "lite", "v3.5": "generalv3.5", "v4.0": "4.0Ultra"}
FIELDS = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class FakeSpark(LoopbackServer):
    secrets: dict[str, str] = field(default_factory=dict)  # API key -> API secret
    frames: list[dict[str, Any]] = field(default_factory=list)  # request frames received

    def app(self) -> Starlette:
        return Starlette(routes=[WebSocketRoute("/{version}/chat", self._chat)])

    def _authorised(self, websocket: WebSocket) -> bool:
        query = websocket.query_params
        try:
            origin = base64.b64decode(query.get("authorization", "")).decode()
        except ValueError:
            return False
        fields = dict(FIELDS.findall(origin))
        secret = self.secrets.get(fields.get("api_key", ""))
        if secret is None or fields.get("headers") != "host date request-line":
            return False
        line = f"GET {websocket.url.path} HTTP/1.1"
        signed = f"host: {query.get('host')}\ndate: {query.get('date')}\n{line}"
        wanted = base64.b64encode(
            hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()
        ).decode()
        return hmac.compare_digest(wanted, fields.get("signature", ""))

    async def _chat(self, websocket: WebSocket) -> None:
        if not self._authorised(websocket):  # Spark refuses the handshake with a 401
            denial = JSONResponse({"message": "HMAC signature does not match"}, 401)
            await websocket.send_denial_response(denial)
            return
        await websocket.accept()
        request = orjson.loads(await websocket.receive_text())
        self.frames.append(request)
        version = websocket.path_params["version"]
        sid = "cht000fake"

        async def send(code: int, status: int, payload: dict[str, Any] | None = None) -> None:
            header = {
                "code": code,
                "message": "Success" if code == 0 else f"error {code}",
                "sid": sid,
                "status": status,
            }
            await websocket.send_text(
                orjson.dumps({"header": header, "payload": payload or {}}).decode()
            )

        if request.get("parameter", {}).get("chat", {}).get("domain") != DOMAINS.get(version):
            await send(10404, 2)
            await websocket.close()
            return
        last = request["payload"]["message"]["text"][-1]["content"]
        if last.startswith("fail-"):
            await send(int(last.removeprefix("fail-")), 2)
            await websocket.close()
            return
        usage = {
            "text": {
                "question_tokens": 4,
                "prompt_tokens": 6,
                "completion_tokens": 9,
                "total_tokens": 15,
            }
        }
        if "functions" in request["payload"]:
            call = {"name": "get_weather", "arguments": '{"city": "Hefei"}'}
            text = [{"content": "", "role": "assistant", "index": 0, "function_call": call}]
            await send(0, 2, {"choices": {"status": 2, "seq": 0, "text": text}, "usage": usage})
            await websocket.close()
            return
        pieces = [REPLY[:3], REPLY[3:]]
        for seq, piece in enumerate(pieces):
            status = 2 if seq == len(pieces) - 1 else 1
            payload: dict[str, Any] = {
                "choices": {
                    "status": status,
                    "seq": seq,
                    "text": [{"content": piece, "role": "assistant", "index": 0}],
                }
            }
            if status == 2:
                payload["usage"] = usage
            await send(0, status, payload)
        await websocket.close()
