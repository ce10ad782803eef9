"""A fake Baidu Wenxin Qianfan v1 API on loopback, speaking its wire format: the OAuth token
exchange (`/oauth/2.0/token`), ERNIE chat (`/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/{endpoint}`,
JSON or SSE with `is_end`) and embeddings, and errors as Baidu reports them: inside a 200 answer
(`error_code`, `error_msg`).

Like the real API it refuses an unknown access token (110), messages that do not alternate
user / assistant starting with a user turn (336006), and a client id `bad` at the token
endpoint (401 `invalid_client`). The endpoint `fail-qps` answers error 18 (QPS limit).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer

REPLY = "你好，我是文心一言。"
PREFIX = "/rpc/2.0/ai_custom/v1/wenxinworkshop"


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _error(code: int, message: str) -> Response:
    return _json({"error_code": code, "error_msg": message})  # a 200, as Baidu answers


@dataclass
class FakeBaidu(LoopbackServer):
    prompt_tokens: int = 9
    completion_tokens: int = 6
    tokens: set[str] = field(default_factory=set)  # access tokens that are valid now
    token_requests: int = 0
    _serial: Any = field(default_factory=itertools.count)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/oauth/2.0/token", self._token, methods=["POST"]),
                Route(PREFIX + "/chat/{endpoint}", self._chat, methods=["POST"]),
                Route(PREFIX + "/embeddings/{endpoint}", self._embed, methods=["POST"]),
            ]
        )

    def revoke(self) -> None:
        """Every token issued so far stops working (as when one expires)."""
        self.tokens.clear()

    async def _token(self, request: Request) -> Response:
        await self.record(request)
        self.token_requests += 1
        query = request.query_params
        if query.get("grant_type") != "client_credentials" or not query.get("client_secret"):
            return _json({"error": "invalid_request", "error_description": "bad request"}, 400)
        if query.get("client_id") == "bad":
            return _json({"error": "invalid_client", "error_description": "unknown client id"}, 401)
        token = f"24.fake-{next(self._serial)}"
        self.tokens.add(token)
        return _json({"access_token": token, "expires_in": 2592000, "scope": "public"})

    def _usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    async def _chat(self, request: Request) -> Response:
        body = await self.record(request)
        if request.query_params.get("access_token") not in self.tokens:
            return _error(110, "Access token invalid or no longer valid")
        if request.path_params["endpoint"] == "fail-qps":
            return _error(18, "Open api qps request limit reached")
        roles = [m.get("role") for m in body.get("messages") or []]
        alternating = all(
            role == ("user" if i % 2 == 0 else "assistant") for i, role in enumerate(roles)
        )
        if not roles or not alternating or len(roles) % 2 == 0:
            return _error(336006, "the length of messages must be an odd number")
        if body.get("stream") is True:
            return StreamingResponse(self._events(), media_type="text/event-stream")
        answer = {
            "id": "as-fake",
            "object": "chat.completion",
            "created": 1700000000,
            "result": REPLY,
            "is_truncated": False,
            "need_clear_history": False,
            "usage": self._usage(),
        }
        return _json(answer)

    async def _events(self) -> AsyncIterator[bytes]:
        pieces = [REPLY[:4], REPLY[4:]]
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            event: dict[str, Any] = {
                "id": "as-fake",
                "object": "chat.completion",
                "sentence_id": index,
                "is_end": last,
                "result": piece,
            }
            if last:
                event["usage"] = self._usage()
            yield b"data: " + orjson.dumps(event) + b"\n\n"

    async def _embed(self, request: Request) -> Response:
        body = await self.record(request)
        if request.query_params.get("access_token") not in self.tokens:
            return _error(110, "Access token invalid or no longer valid")
        inputs = body.get("input") or []
        data = [
            {"object": "embedding", "embedding": [0.5, 0.25], "index": i}
            for i in range(len(inputs))
        ]
        usage = {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens}
        return _json({"id": "as-emb", "object": "embedding_list", "data": data, "usage": usage})
