"""A fake Gemini API (`/{version}/models/{model}:generateContent`, `:streamGenerateContent
?alt=sse`, `:batchEmbedContents`) on loopback, speaking Google's wire format: candidates with
parts, usageMetadata, SSE chunks and `{"error": {code, message, status}}` bodies.

Like the real API it refuses a request without `x-goog-api-key` (403 PERMISSION_DENIED), a key
`bad` (400 API_KEY_INVALID), a role other than user/model, empty contents, and function
parameters carrying JSON-schema keywords Gemini does not know (`$schema`,
`additionalProperties`): 400 INVALID_ARGUMENT.

Imagen models answer `:predict` with `sampleCount` base64 PNGs. Behaviour by model name:
`fail-<status>[-anything]` (that status and Google's status string),
`tools` (two parallel functionCall parts), `thinking` (a thought part, then text), `max`
(MAX_TOKENS), `safety` (SAFETY, no text); anything else answers `reply_text`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer

REPLY = "Hello from Gemini!"
IMAGE_B64 = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
THOUGHT = "Thinking it over."
CALLS = [
    {"name": "get_weather", "args": {"city": "Paris"}},
    {"name": "get_time", "args": {"zone": "Europe/Paris"}},
]
STATUSES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
UNKNOWN_FIELDS = ("$schema", "additionalProperties")


def error_body(status: int, message: str) -> Response:
    error = {"code": status, "message": message, "status": STATUSES.get(status, "UNKNOWN")}
    return Response(orjson.dumps({"error": error}), status, media_type="application/json")


def _unknown_field(value: Any) -> str | None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in UNKNOWN_FIELDS:
                return str(key)
            found = _unknown_field(item)
            if found:
                return found
    if isinstance(value, list):
        for item in value:
            found = _unknown_field(item)
            if found:
                return found
    return None


@dataclass
class FakeGemini(LoopbackServer):
    reply_text: str = REPLY
    prompt_tokens: int = 10
    answer_tokens: int = 5
    thought_tokens: int = 3
    cached_tokens: int = 0

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/{version}/models/{rest:path}", self._call, methods=["POST"])]
        )

    def metadata(self, thinking: bool) -> dict[str, Any]:
        thoughts = self.thought_tokens if thinking else 0
        usage = {
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": self.answer_tokens,
            "totalTokenCount": self.prompt_tokens + self.answer_tokens + thoughts,
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        if self.cached_tokens:
            usage["cachedContentTokenCount"] = self.cached_tokens
        return usage

    async def _call(self, request: Request) -> Response:
        body = await self.record(request)
        key = request.headers.get("x-goog-api-key")
        if not key:
            return error_body(403, "Method doesn't allow unregistered callers")
        if key == "bad":
            return error_body(400, "API key not valid. Please pass a valid API key.")
        model, _, action = request.path_params["rest"].partition(":")
        code = model.split("-")[1] if model.startswith("fail-") else ""
        if code.isdigit():
            return error_body(int(code), f"fake failure {code}")
        if action == "batchEmbedContents":
            return self._embed(body)
        if action == "predict":
            return self._imagen(body)
        problem = self._invalid(body)
        if problem:
            return error_body(400, problem)
        parts, finish = self.parts(model)
        if action == "streamGenerateContent":
            if request.query_params.get("alt") != "sse":
                return error_body(400, "the fake only streams with alt=sse")
            return StreamingResponse(
                self.chunks(model, parts, finish), media_type="text/event-stream"
            )
        if action != "generateContent":
            return error_body(404, f"unknown action {action}")
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        candidate["finishReason"] = finish
        answer = {
            "candidates": [candidate],
            "usageMetadata": self.metadata(model.startswith("thinking")),
            "modelVersion": model,
            "responseId": "resp_fake",
        }
        return Response(orjson.dumps(answer), media_type="application/json")

    @staticmethod
    def _invalid(body: dict[str, Any]) -> str:
        contents = body.get("contents")
        if not contents:
            return "contents is not specified"
        for content in contents:
            if content.get("role") not in ("user", "model"):
                return f"Please use a valid role: user, model. Got {content.get('role')}"
        unknown = _unknown_field(body.get("tools"))
        if unknown:
            return f'Invalid JSON payload received. Unknown name "{unknown}"'
        return ""

    def parts(self, model: str) -> tuple[list[dict[str, Any]], str]:
        if model.startswith("tools"):
            return [{"functionCall": call} for call in CALLS], "STOP"
        text = {"text": self.reply_text}
        if model.startswith("thinking"):
            return [{"text": THOUGHT, "thought": True}, text], "STOP"
        if model.startswith("max"):
            return [text], "MAX_TOKENS"
        if model.startswith("safety"):
            return [], "SAFETY"
        return [text], "STOP"

    async def chunks(
        self, model: str, parts: list[dict[str, Any]], finish: str
    ) -> AsyncIterator[bytes]:
        pieces: list[dict[str, Any]] = []
        for part in parts:
            text = part.get("text")
            if isinstance(text, str) and not part.get("thought"):
                pieces += [{"text": text[i : i + 5]} for i in range(0, len(text), 5)]
            else:
                pieces.append(part)
        pieces = pieces or [{"text": ""}]
        usage = self.metadata(model.startswith("thinking"))
        for position, piece in enumerate(pieces):
            last = position == len(pieces) - 1
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [piece]}, "index": 0}
            if last:
                candidate["finishReason"] = finish
            chunk = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}
            yield b"data: " + orjson.dumps(chunk) + b"\r\n\r\n"

    @staticmethod
    def _imagen(body: dict[str, Any]) -> Response:
        """Imagen's `:predict`: `sampleCount` PNGs (the same tiny one) as base64."""
        instances = body.get("instances") or []
        if not instances or not instances[0].get("prompt"):
            return error_body(400, "instances[0].prompt is required")
        count = int((body.get("parameters") or {}).get("sampleCount", 1))
        picture = {"mimeType": "image/png", "bytesBase64Encoded": IMAGE_B64}
        return Response(
            orjson.dumps({"predictions": [picture] * count}), media_type="application/json"
        )

    @staticmethod
    def _embed(body: dict[str, Any]) -> Response:
        embeddings = []
        for item in body.get("requests") or []:
            size = item.get("outputDimensionality") or 4
            text = item["content"]["parts"][0]["text"]
            embeddings.append({"values": [float(len(text))] * size})
        return Response(orjson.dumps({"embeddings": embeddings}), media_type="application/json")
