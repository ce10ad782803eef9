"""A fake Vertex AI on loopback: Google's OAuth token endpoint for service accounts and the
Vertex model endpoints of both publishers it serves here.

- `POST /token`: the JWT-bearer grant google-auth sends; the assertion's RS256 signature is
  checked against the service account's public key, its audience against Google's token URL.
  Answers an access token (counted in `tokens_issued`); a bad assertion is Google's 400
  invalid_grant.
- `POST /v1/projects/{p}/locations/{r}/publishers/google/models/{m}:generateContent` (and
  `:streamGenerateContent?alt=sse`): Gemini answers, as `FakeGemini` gives them.
- `POST .../publishers/anthropic/models/{m}:rawPredict` (and `:streamRawPredict`): Claude
  answers, as `FakeAnthropic` gives them (for the name after `claude-`); the body must carry
  `anthropic_version: vertex-2023-10-16` and no `model`.
Model calls need `Authorization: Bearer` with an issued token (else Google's 401).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.anthropic_upstream import FakeAnthropic, sse
from tests.fakes.anthropic_upstream import error_body as anthropic_error
from tests.fakes.gemini_upstream import FakeGemini, error_body
from tests.fakes.loopback import LoopbackServer

PROJECT = "proj-fake"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # what google-auth always claims


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@dataclass
class FakeVertex(LoopbackServer):
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    tokens_issued: list[str] = field(default_factory=list)
    gemini: FakeGemini = field(default_factory=FakeGemini)
    claude: FakeAnthropic = field(default_factory=FakeAnthropic)

    def service_account(self) -> str:
        """The key a Vertex channel holds: a service-account JSON document."""
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": f"relay@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{self.url}/token",
            }
        )

    def app(self) -> Starlette:
        model_path = (
            "/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{rest}"
        )
        return Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route(model_path, self._model, methods=["POST"]),
            ]
        )

    async def _token(self, request: Request) -> Response:
        form = await request.form()
        assertion = str(form.get("assertion") or "")
        try:
            header, payload, signature = assertion.split(".")
            self.key.public_key().verify(
                _b64(signature),
                f"{header}.{payload}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
            claims = orjson.loads(_b64(payload))
        except (ValueError, InvalidSignature):
            claims = None
        if not isinstance(claims, dict) or claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
            body = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            return Response(orjson.dumps(body), 400, media_type="application/json")
        token = f"ya29.fake-{len(self.tokens_issued)}"
        self.tokens_issued.append(token)
        answer = {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        return Response(orjson.dumps(answer), media_type="application/json")

    async def _model(self, request: Request) -> Response:
        body = await self.record(request)
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in self.tokens_issued:
            return error_body(401, "Request had invalid authentication credentials.")
        model, _, action = request.path_params["rest"].partition(":")
        if request.path_params["publisher"] == "anthropic":
            return self._claude(model, action, body)
        if action == "predict":  # text embeddings: one vector per instance, its token count
            predictions = [
                {
                    "embeddings": {
                        "values": [0.1, 0.2, 0.3],
                        "statistics": {
                            "token_count": len(item["content"].split()),
                            "truncated": False,
                        },
                    }
                }
                for item in body.get("instances") or []
            ]
            return Response(
                orjson.dumps({"predictions": predictions}), media_type="application/json"
            )
        parts, finish = self.gemini.parts(model)
        if action == "streamGenerateContent":
            return StreamingResponse(
                self.gemini.chunks(model, parts, finish), media_type="text/event-stream"
            )
        candidate = {"content": {"role": "model", "parts": parts}, "finishReason": finish}
        answer = {"candidates": [candidate], "usageMetadata": self.gemini.metadata(False)}
        return Response(orjson.dumps(answer), media_type="application/json")

    def _claude(self, model: str, action: str, body: dict[str, Any]) -> Response:
        if body.get("anthropic_version") != "vertex-2023-10-16" or "model" in body:
            return anthropic_error(400, "anthropic_version: vertex-2023-10-16 is required")
        content, stop = self.claude.content(model.removeprefix("claude-"))
        if action == "streamRawPredict":
            return StreamingResponse(
                self._sse(self.claude.events(model, content, stop)),
                media_type="text/event-stream",
            )
        message = {
            "id": "msg_vrtx_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "usage": self.claude.usage(),
        }
        return Response(orjson.dumps(message), media_type="application/json")

    @staticmethod
    async def _sse(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
        for event in events:
            yield sse(event)
