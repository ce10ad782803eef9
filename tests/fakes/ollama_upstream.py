"""A fake Ollama server on loopback, speaking its native API: `/api/chat` (one JSON answer, or
newline-delimited JSON chunks ending with a `done` line that carries `done_reason`,
`prompt_eval_count` and `eval_count`) and `/api/embed`; errors as `{"error": "..."}`.

Like Ollama it answers 404 for a model it has not pulled (`missing…`) and 400 for an image
that is not base64. `tools…` models answer a tool call with its arguments as an object.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer

REPLY = "Hello from llama!"


@dataclass
class FakeOllama(LoopbackServer):
    prompt_tokens: int = 11
    answer_tokens: int = 4

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/chat", self._chat, methods=["POST"]),
                Route("/api/embed", self._embed, methods=["POST"]),
            ]
        )

    def _done(self, model: str, reason: str) -> dict[str, Any]:
        return {
            "model": model,
            "created_at": "2026-12-03T00:00:00Z",
            "done": True,
            "done_reason": reason,
            "prompt_eval_count": self.prompt_tokens,
            "eval_count": self.answer_tokens,
        }

    async def _chat(self, request: Request) -> Response:
        body = await self.record(request)
        model = str(body.get("model") or "")
        if model.startswith("missing"):
            return JSONResponse({"error": f"model '{model}' not found"}, 404)
        for turn in body.get("messages") or []:
            for image in turn.get("images") or []:
                try:
                    base64.b64decode(image, validate=True)
                except binascii.Error:
                    return JSONResponse({"error": "illegal base64 data"}, 400)
        reason = "length" if model.startswith("long") else "stop"
        if model.startswith("tools"):
            call = {"function": {"name": "get_weather", "arguments": {"city": "Lyon"}}}
            message: dict[str, Any] = {"role": "assistant", "content": "", "tool_calls": [call]}
        else:
            message = {"role": "assistant", "content": REPLY}
        if body.get("stream") is False:
            return JSONResponse({**self._done(model, reason), "message": message})

        async def lines() -> AsyncIterator[bytes]:
            pieces = [REPLY[:6], REPLY[6:]] if "tool_calls" not in message else [""]
            for piece in pieces:
                chunk = {"role": "assistant", "content": piece}
                if "tool_calls" in message:
                    chunk["tool_calls"] = message["tool_calls"]
                line = {
                    "model": model,
                    "created_at": "2026-12-03T00:00:00Z",
                    "message": chunk,
                    "done": False,
                }
                yield orjson.dumps(line) + b"\n"
            end = {**self._done(model, reason), "message": {"role": "assistant", "content": ""}}
            yield orjson.dumps(end) + b"\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def _embed(self, request: Request) -> Response:
        body = await self.record(request)
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs or []
        return JSONResponse(
            {
                "model": body.get("model"),
                "embeddings": [[0.5, 0.5] for _ in texts],
                "prompt_eval_count": self.prompt_tokens,
            }
        )
