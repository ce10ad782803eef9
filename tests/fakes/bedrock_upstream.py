"""A fake AWS Bedrock runtime (`POST /model/{id}/invoke` and `/invoke-with-response-stream`)
on loopback, speaking Bedrock's wire format for Claude: Anthropic's Message bodies, the binary
AWS event-stream framing (each Anthropic event base64-encoded in a `chunk` event, exceptions as
exception frames) and `{"message": ...}` error bodies with `x-amzn-ErrorType`.

Every request's SigV4 signature is checked with botocore against the instance's `secrets`
(access key -> secret key); a wrong one is AWS's 403 InvalidSignatureException. Model ids the
fake reads behaviour from (after any region prefix and the `anthropic.` vendor prefix):
`fail-<status>` (AWS's error body), `throttled` (a stream ending in a throttlingException
frame before any event) and every behaviour of `FakeAnthropic`. `/converse` and
`/converse-stream` answer any model id in the Converse API's shape (an id containing `tools`:
two toolUse blocks, streamed as contentBlockStart / Delta / Stop events).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.anthropic_upstream import TOOL_USES, FakeAnthropic

AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[^,]+), Signature=(?P<sig>\w+)"
)
ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def error_body(status: int, message: str, kind: str = "") -> Response:
    return Response(
        orjson.dumps({"message": message}),
        status,
        media_type="application/json",
        headers={"x-amzn-ErrorType": f"{kind or ERROR_TYPES.get(status, 'Unknown')}:http://"},
    )


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude with its CRC, string headers, payload, CRC."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack("B", len(raw_name)) + raw_name + b"\x07"
        encoded += struct.pack(">H", len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", binascii.crc32(message))


def chunk_frame(event: dict[str, Any]) -> bytes:
    payload = orjson.dumps({"bytes": base64.b64encode(orjson.dumps(event)).decode()})
    headers = {
        ":event-type": "chunk",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return frame(headers, payload)


@dataclass
class FakeBedrock(FakeAnthropic):
    secrets: dict[str, str] = field(default_factory=dict)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/model/{model}/{action}", self._invoke, methods=["POST"])])

    def _signature_problem(self, request: Request, body: bytes) -> str:
        match = AUTH.fullmatch(request.headers.get("authorization", ""))
        if match is None:
            return "Missing Authentication Token"
        secret = self.secrets.get(match["key"])
        if secret is None or match["service"] != "bedrock":
            return "The security token included in the request is invalid."
        raw_path = request.scope["raw_path"].decode()
        signed = match["signed"].split(";")
        headers = {name: request.headers[name] for name in signed if name != "host"}
        rebuilt = AWSRequest(
            method="POST",
            url=f"http://{request.headers['host']}{raw_path}",
            data=body,
            headers=headers,
        )
        rebuilt.context["timestamp"] = request.headers.get("x-amz-date", "")
        auth = SigV4Auth(Credentials(match["key"], secret), "bedrock", match["region"])
        expected = auth.signature(
            auth.string_to_sign(rebuilt, auth.canonical_request(rebuilt)), rebuilt
        )
        if expected != match["sig"]:
            return "The request signature we calculated does not match the signature you provided."
        return ""

    async def _invoke(self, request: Request) -> Response:
        raw = await request.body()
        await self.record(request)
        problem = self._signature_problem(request, raw)
        if problem:
            return error_body(403, problem, "InvalidSignatureException")
        body = orjson.loads(raw)
        action = request.path_params["action"]
        if action in ("converse", "converse-stream"):
            return self._converse(unquote(request.path_params["model"]), body, action)
        if body.get("anthropic_version") != "bedrock-2023-05-31":
            return error_body(400, "anthropic_version is required")
        if "model" in body or "stream" in body:
            return error_body(400, "extraneous key [model] is not permitted")
        model = unquote(request.path_params["model"]).split(".")[-1].split(":")[0]
        code = model.split("-")[1] if model.startswith("fail-") else ""
        if code.isdigit():
            return error_body(int(code), f"fake failure {code}")
        content, stop = self.content(model)
        if action == "invoke-with-response-stream":
            return StreamingResponse(
                self._frames(model, content, stop),
                media_type="application/vnd.amazon.eventstream",
            )
        if action != "invoke":
            return error_body(404, f"unknown action {action}")
        message = {
            "id": "msg_bdrk_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": self.usage(),
        }
        return Response(orjson.dumps(message), media_type="application/json")

    def _converse(self, model: str, body: dict[str, Any], action: str) -> Response:
        """The Converse API: any model id; `tools…` answers two toolUse blocks, else text."""
        messages = body.get("messages")
        if not messages or messages[0].get("role") != "user" or "model" in body:
            return error_body(400, "A conversation must start with a user message.")
        for turn, following in itertools.pairwise(messages):
            if turn["role"] == following["role"]:
                return error_body(
                    400, "A conversation must alternate between user and assistant roles."
                )
        usage = {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.input_tokens + self.output_tokens,
        }
        tools = "tools" in model
        blocks: list[dict[str, Any]] = (
            [
                {"toolUse": {"toolUseId": use["id"], "name": use["name"], "input": use["input"]}}
                for use in TOOL_USES
            ]
            if tools
            else [{"text": self.reply_text}]
        )
        stop = "tool_use" if tools else "end_turn"
        if action == "converse":
            answer = {
                "output": {"message": {"role": "assistant", "content": blocks}},
                "stopReason": stop,
                "usage": usage,
                "metrics": {"latencyMs": 12},
            }
            return Response(orjson.dumps(answer), media_type="application/json")
        return StreamingResponse(
            self._converse_frames(blocks, stop, usage),
            media_type="application/vnd.amazon.eventstream",
        )

    @staticmethod
    async def _converse_frames(
        blocks: list[dict[str, Any]], stop: str, usage: dict[str, int]
    ) -> AsyncIterator[bytes]:
        def event(kind: str, payload: dict[str, Any]) -> bytes:
            headers = {
                ":event-type": kind,
                ":content-type": "application/json",
                ":message-type": "event",
            }
            return frame(headers, orjson.dumps(payload))

        yield event("messageStart", {"role": "assistant"})
        for index, block in enumerate(blocks):
            use = block.get("toolUse")
            if use is not None:
                start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
                yield event("contentBlockStart", {"contentBlockIndex": index, "start": start})
                text = orjson.dumps(use["input"]).decode()
                for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                    delta = {"toolUse": {"input": piece}}
                    yield event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})
            else:
                for piece in (block["text"][:5], block["text"][5:]):
                    yield event(
                        "contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}}
                    )
            yield event("contentBlockStop", {"contentBlockIndex": index})
        yield event("messageStop", {"stopReason": stop})
        yield event("metadata", {"usage": usage, "metrics": {"latencyMs": 12}})

    async def _frames(
        self, model: str, content: list[dict[str, Any]], stop: str
    ) -> AsyncIterator[bytes]:
        if model.startswith("throttled"):
            headers = {
                ":exception-type": "throttlingException",
                ":content-type": "application/json",
                ":message-type": "exception",
            }
            yield frame(headers, orjson.dumps({"message": "Too many requests, please wait."}))
            return
        for event in self.events(model, content, stop):
            data = chunk_frame(event)
            # Frames split across reads, as TCP may deliver them.
            yield data[:7]
            yield data[7:]
