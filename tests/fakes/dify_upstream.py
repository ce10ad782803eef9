"""A fake Dify app API on loopback, speaking its real wire format: `POST /v1/chat-messages`
(blocking: the answer with `metadata.usage`; streaming: SSE events `workflow_started`,
`message`, `message_end` with the usage, or `error`), errors as `{code, message, status}`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer

ANSWER = ["Dify", " says", " hello"]


def _event(payload: dict[str, object]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


@dataclass
class FakeDify(LoopbackServer):
    prompt_tokens: int = 60
    completion_tokens: int = 6
    fail_in_stream: bool = False  # an `error` event instead of the answer
    refuse: bool = False  # a 400 in Dify's error shape

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat-messages", self._chat, methods=["POST"])])

    def _usage(self) -> dict[str, object]:
        total = self.prompt_tokens + self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": total,
            "currency": "USD",
        }

    async def _chat(self, request: Request) -> Response:
        body = await self.record(request)
        if request.headers.get("authorization", "") != "Bearer app-key":
            return JSONResponse(
                {"code": "unauthorized", "message": "Access token is invalid", "status": 401},
                status_code=401,
            )
        if self.refuse or not body.get("query"):
            return JSONResponse(
                {"code": "invalid_param", "message": "query is required", "status": 400},
                status_code=400,
            )
        ids = {"message_id": "msg-fake", "conversation_id": "conv-fake"}
        if body.get("response_mode") != "streaming":
            return JSONResponse(
                {
                    "event": "message",
                    **ids,
                    "mode": "chat",
                    "answer": "".join(ANSWER),
                    "metadata": {"usage": self._usage()},
                    "created_at": 1,
                }
            )

        async def events() -> AsyncIterator[bytes]:
            yield _event({"event": "workflow_started", **ids, "data": {"id": "wf"}})
            if self.fail_in_stream:
                yield _event({"event": "error", **ids, "status": 400, "code": "provider_quota",
                              "message": "the model provider is out of quota"})  # fmt: skip
                return
            for piece in ANSWER:
                yield _event({"event": "message", **ids, "answer": piece})
            yield _event({"event": "message_end", **ids, "metadata": {"usage": self._usage()}})

        return StreamingResponse(events(), media_type="text/event-stream")
