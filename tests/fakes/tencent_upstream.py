"""A fake Tencent Hunyuan API (`POST /` with `X-TC-Action: ChatCompletions`) on loopback,
speaking the Tencent Cloud API's wire format: `{"Response": {...}}` answers, SSE chunks with
`Choices[].Delta`, and errors inside a 200 (`Response.Error.Code`).

Like the real API it checks the TC3-HMAC-SHA256 signature of every request against the secret
key it knows for the `Credential`'s secret id (AuthFailure.SecretIdNotFound /
AuthFailure.SignatureFailure), and a timestamp more than 5 minutes off
(AuthFailure.SignatureExpire).
Behaviour by `Model`: `tools…` answers two tool calls; `limit…` answers LimitExceeded; anything
else `REPLY`."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer

REPLY = "你好！我是腾讯混元。"
CALLS = [
    {
        "Id": "call_a",
        "Type": "function",
        "Function": {"Name": "get_weather", "Arguments": '{"city": "Shenzhen"}'},
    },
    {"Id": "call_b", "Type": "function", "Function": {"Name": "get_time", "Arguments": "{}"}},
]


def _answer(response: dict[str, Any]) -> Response:
    body = {"Response": {**response, "RequestId": "req-fake"}}
    return Response(orjson.dumps(body), media_type="application/json")


def _error(code: str, message: str) -> Response:
    return _answer({"Error": {"Code": code, "Message": message}})


def expected_signature(secret_key: str, host: str, payload: bytes, timestamp: str) -> str:
    """The signature Tencent Cloud computes (its documented TC3-HMAC-SHA256 steps)."""
    date = datetime.datetime.fromtimestamp(int(timestamp), datetime.UTC).strftime("%Y-%m-%d")
    hashed_payload = hashlib.sha256(payload).hexdigest()
    canonical_request = (
        f"POST\n/\n\ncontent-type:application/json\nhost:{host}\n\ncontent-type;host\n"
        f"{hashed_payload}"
    )
    string_to_sign = (
        f"TC3-HMAC-SHA256\n{timestamp}\n{date}/hunyuan/tc3_request\n"
        + hashlib.sha256(canonical_request.encode()).hexdigest()
    )

    def sign(key: bytes, text: str) -> bytes:
        return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()

    secret_date = sign(("TC3" + secret_key).encode("utf-8"), date)
    secret_service = sign(secret_date, "hunyuan")
    secret_signing = sign(secret_service, "tc3_request")
    return hmac.new(secret_signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass
class FakeHunyuan(LoopbackServer):
    secrets: dict[str, str] = field(default_factory=dict)  # secret id -> secret key
    prompt_tokens: int = 8
    completion_tokens: int = 7

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/", self._call, methods=["POST"])])

    def _usage(self) -> dict[str, int]:
        return {
            "PromptTokens": self.prompt_tokens,
            "CompletionTokens": self.completion_tokens,
            "TotalTokens": self.prompt_tokens + self.completion_tokens,
        }

    def _auth_error(self, request: Request, payload: bytes) -> Response | None:
        auth = request.headers.get("authorization", "")
        fields = dict(
            part.strip().split("=", 1)
            for part in auth.removeprefix("TC3-HMAC-SHA256 ").split(",")
            if "=" in part
        )
        secret_id = fields.get("Credential", "").split("/")[0]
        if secret_id not in self.secrets:
            return _error("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        timestamp = request.headers.get("x-tc-timestamp", "0")
        if abs(time.time() - int(timestamp)) > 300:
            return _error("AuthFailure.SignatureExpire", "The signature has expired.")
        wanted = expected_signature(
            self.secrets[secret_id], request.headers.get("host", ""), payload, timestamp
        )
        if fields.get("Signature") != wanted or fields.get("SignedHeaders") != "content-type;host":
            return _error(
                "AuthFailure.SignatureFailure", "The provided credentials could not be validated."
            )
        return None

    async def _call(self, request: Request) -> Response:
        payload = await request.body()
        body = await self.record(request)
        if request.headers.get("x-tc-action") != "ChatCompletions":
            return _error("InvalidAction", "The action is not found.")
        if request.headers.get("x-tc-version") != "2023-09-01":
            return _error("NoSuchVersion", "The version is not found.")
        refused = self._auth_error(request, payload)
        if refused is not None:
            return refused
        model = str(body.get("Model") or "")
        if model.startswith("limit"):
            return _error("LimitExceeded", "Requests exceed the rate limit.")
        if not body.get("Messages"):
            return _error("InvalidParameter", "Messages is required.")
        tools = model.startswith("tools")
        if body.get("Stream") is True:
            return StreamingResponse(self._chunks(tools), media_type="text/event-stream")
        message: dict[str, Any] = {"Role": "assistant", "Content": "" if tools else REPLY}
        if tools:
            message["ToolCalls"] = CALLS
        choice = {"FinishReason": "tool_calls" if tools else "stop", "Message": message}
        return _answer(
            {"Id": "hy-fake", "Created": 1700000000, "Choices": [choice], "Usage": self._usage()}
        )

    async def _chunks(self, tools: bool) -> AsyncIterator[bytes]:
        deltas: list[dict[str, Any]] = (
            [
                {"Role": "assistant", "ToolCalls": [{**call, "Index": i}]}
                for i, call in enumerate(CALLS)
            ]
            if tools
            else [
                {"Role": "assistant", "Content": REPLY[:4]},
                {"Role": "assistant", "Content": REPLY[4:]},
            ]
        )
        for index, delta in enumerate(deltas):
            last = index == len(deltas) - 1
            finish = ("tool_calls" if tools else "stop") if last else ""
            chunk = {
                "Id": "hy-fake",
                "Created": 1700000000,
                "Choices": [{"Delta": delta, "FinishReason": finish}],
                "Usage": self._usage(),
            }
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
