"""A fake Cohere API on loopback, speaking its real wire format: `POST /v1/chat` (v1 chat:
`message`, `chat_history`, `preamble`; JSON answer with `meta.billed_units`, or with
`stream: true` newline-delimited events `stream-start`, `text-generation`, `stream-end`),
`POST /v1/rerank`, and errors as `{"message": ...}` with the HTTP status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer

REPLY = ["Hello", " from", " Cohere"]


@dataclass
class FakeCohere(LoopbackServer):
    input_tokens: int = 40
    output_tokens: int = 5
    finish_reason: str = "COMPLETE"
    fail_status: int = 0  # answer every request with this status and Cohere's error body

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat", self._chat, methods=["POST"]),
                Route("/v1/rerank", self._rerank, methods=["POST"]),
                Route("/v1/embed", self._embed, methods=["POST"]),
            ]
        )

    def _meta(self) -> dict[str, object]:
        units = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        return {"api_version": {"version": "1"}, "billed_units": units, "tokens": units}

    async def _chat(self, request: Request) -> Response:
        body = await self.record(request)
        if request.headers.get("authorization", "") != "Bearer co-key":
            return JSONResponse({"message": "invalid api token"}, status_code=401)
        if self.fail_status:
            message = f"upstream refused with {self.fail_status}"
            return JSONResponse({"message": message}, status_code=self.fail_status)
        final = {
            "response_id": "resp-fake",
            "text": "".join(REPLY),
            "generation_id": "gen-fake",
            "chat_history": [],
            "finish_reason": self.finish_reason,
            "meta": self._meta(),
        }
        if not body.get("stream"):
            return JSONResponse(final)

        async def events() -> AsyncIterator[bytes]:
            yield orjson.dumps({"is_finished": False, "event_type": "stream-start"}) + b"\n"
            for piece in REPLY:
                event = {"is_finished": False, "event_type": "text-generation", "text": piece}
                yield orjson.dumps(event) + b"\n"
            end = {
                "is_finished": True,
                "event_type": "stream-end",
                "finish_reason": self.finish_reason,
                "response": final,
            }
            yield orjson.dumps(end) + b"\n"

        return StreamingResponse(events(), media_type="application/stream+json")

    async def _embed(self, request: Request) -> Response:
        """Cohere's v1 embed: float vectors by type, billed input tokens (one per word)."""
        body = await self.record(request)
        texts = body.get("texts") or []
        if not texts or body.get("input_type") not in ("search_document", "search_query"):
            return JSONResponse({"message": "texts and a valid input_type are required"}, 400)
        tokens = sum(len(text.split()) for text in texts)
        return JSONResponse(
            {
                "id": "emb-fake",
                "embeddings": {"float": [[0.25, -0.5] for _ in texts]},
                "texts": texts,
                "meta": {"billed_units": {"input_tokens": tokens}},
                "response_type": "embeddings_by_type",
            }
        )

    async def _rerank(self, request: Request) -> Response:
        body = await self.record(request)
        documents = body.get("documents") or []
        results = [{"index": i, "relevance_score": 0.9 - i / 10} for i in range(len(documents))]
        return JSONResponse(
            {"id": "rr-fake", "results": results, "meta": {"billed_units": {"search_units": 1}}}
        )
