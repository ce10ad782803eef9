"""AWS Bedrock (33): Claude through InvokeModel with Anthropic's Messages body, every other
model through the Converse API (bedrock_converse.py); both signed with SigV4.

The key is `AK|SK|region` (as upstream stores it). Requests go to
`https://bedrock-runtime.{region}.amazonaws.com/model/{model id}/invoke` (streams:
`/invoke-with-response-stream`), or to the channel's base URL (a VPC or custom endpoint),
signed by botocore's SigV4 signer for the `bedrock` service. Claude model names map to Bedrock
model ids, with the region's cross-region inference prefix (`us.`, `eu.`, `apac.`) for the
models that have one; other names are sent as they are (a full Bedrock id or an inference
profile ARN through the channel's model mapping). The body and the answer are Anthropic's, so
the Anthropic adaptor's conversions serve; the stream arrives in AWS's binary event-stream
framing (decoded by botocore) with each Anthropic event base64-encoded in a `chunk` event.
Mirrors upstream `relay/channel/aws/adaptor.go`, `relay-aws.go` and `constants.go`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, cast
from urllib.parse import quote

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError

from services.relay.adaptors import bedrock_converse as converse
from services.relay.adaptors.anthropic import AnthropicAdaptor, MessageStream, to_messages
from services.relay.adaptors.base import (
    Json,
    Outgoing,
    StreamConverter,
    Target,
    UpstreamRequest,
)
from services.relay.adaptors.native import canonical_body, json_object, only
from services.relay.endpoints import CHAT
from services.relay.errors import RelayError
from services.relay.options import ProviderOptions

SERVICE = "bedrock"
BEDROCK_VERSION = "bedrock-2023-05-31"
# What InvokeModel accepts of a Messages body (`model` is in the URL, `stream` in the action).
BODY_FIELDS = (
    "system",
    "messages",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
)
MODEL_IDS = {
    "claude-instant-1.2": "anthropic.claude-instant-v1",
    "claude-2.0": "anthropic.claude-v2",
    "claude-2.1": "anthropic.claude-v2:1",
    "claude-3-sonnet-20240229": "anthropic.claude-3-sonnet-20240229-v1:0",
    "claude-3-opus-20240229": "anthropic.claude-3-opus-20240229-v1:0",
    "claude-3-haiku-20240307": "anthropic.claude-3-haiku-20240307-v1:0",
    "claude-3-5-sonnet-20240620": "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "claude-3-5-sonnet-20241022": "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "claude-3-5-haiku-20241022": "anthropic.claude-3-5-haiku-20241022-v1:0",
    "claude-3-7-sonnet-20250219": "anthropic.claude-3-7-sonnet-20250219-v1:0",
    "claude-sonnet-4-20250514": "anthropic.claude-sonnet-4-20250514-v1:0",
    "claude-opus-4-20250514": "anthropic.claude-opus-4-20250514-v1:0",
}
# Cross-region inference profiles per model: the region groups that have one.
CROSS_REGION = {
    "claude-3-sonnet-20240229": {"us", "eu", "apac"},
    "claude-3-opus-20240229": {"us"},
    "claude-3-haiku-20240307": {"us", "eu", "apac"},
    "claude-3-5-sonnet-20240620": {"us", "eu", "apac"},
    "claude-3-5-sonnet-20241022": {"us", "apac"},
    "claude-3-5-haiku-20241022": {"us"},
    "claude-3-7-sonnet-20250219": {"us", "eu", "apac"},
    "claude-sonnet-4-20250514": {"us", "eu", "apac"},
    "claude-opus-4-20250514": {"us"},
}
REGION_GROUPS = {"us": "us", "eu": "eu", "ap": "apac"}
EXCEPTION_STATUS = {
    "validationException": 400,
    "accessDeniedException": 403,
    "resourceNotFoundException": 404,
    "modelTimeoutException": 408,
    "modelProviderErrorException": 424,
    "throttlingException": 429,
    "internalServerException": 500,
    "serviceUnavailableException": 503,
}
ERROR_TYPES = {
    400: "invalid_request_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def credentials_of(key: str) -> tuple[Credentials, str]:
    """(credentials, region) of an `AK|SK|region` key."""
    parts = [part.strip() for part in key.split("|")]
    if len(parts) != 3 or not all(parts):
        raise RelayError(
            502,
            "the channel's key is not in the AK|SK|region form AWS channels take",
            type_="upstream_error",
            code="channel_misconfigured",
        )
    access, secret, region = parts
    return Credentials(access, secret), region


def model_id(model: str, region: str) -> str:
    """The Bedrock model id for a Claude model name, cross-region when the region has it."""
    known = MODEL_IDS.get(model)
    if known is None:
        return model
    group = REGION_GROUPS.get(region.split("-", 1)[0], "")
    if group and group in CROSS_REGION.get(model, ()):
        return f"{group}.{known}"
    return known


def is_claude(model: str) -> bool:
    """Claude goes through InvokeModel with Anthropic's body; every other model through the
    Converse API (bedrock_converse.py)."""
    return model.startswith("claude") or "anthropic." in model


def to_invoke(body: Json, model: str, providers: ProviderOptions) -> tuple[Json, str]:
    """(the InvokeModel body, the model name with any -thinking suffix handled)."""
    messages = to_messages(body, model, providers)
    native: Json = {"anthropic_version": BEDROCK_VERSION}
    native.update({name: messages[name] for name in BODY_FIELDS if name in messages})
    return native, str(messages["model"])


def sign(
    url: str, body: bytes, headers: dict[str, str], credentials: Credentials, region: str
) -> dict[str, str]:
    """The headers with botocore's SigV4 signature added."""
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(credentials, SERVICE, region).add_auth(request)
    return dict(request.headers.items())


class InvokeStream:
    """InvokeModelWithResponseStream's event-stream frames as OpenAI chunks."""

    __slots__ = ("_buffer", "_messages")

    def __init__(self, model: str) -> None:
        self._buffer = EventStreamBuffer()
        self._messages = MessageStream(model)

    def feed(self, data: bytes) -> bytes:
        self._buffer.add_data(data)
        frames: list[bytes] = []
        try:
            for message in self._buffer:
                frames.append(self._frame(message))
        except ParserError:
            frames.append(self._messages.fail(502, "a malformed event stream frame", "api_error"))
        return b"".join(frames)

    def finish(self) -> bytes:
        return b""

    def _frame(self, message: EventStreamMessage) -> bytes:
        headers = cast("dict[str, Any]", message.headers)  # botocore-stubs say int: it is a dict
        kind = headers.get(":message-type")
        if kind == "exception" or kind == "error":
            name = str(headers.get(":exception-type") or headers.get(":error-code") or "")
            try:
                detail = orjson.loads(message.payload)
            except orjson.JSONDecodeError:
                detail = {}
            text = detail.get("message") if isinstance(detail, dict) else None
            status = EXCEPTION_STATUS.get(name, 500)
            return self._messages.fail(
                status, str(text or name or "upstream stream error"), ERROR_TYPES.get(status, name)
            )
        if headers.get(":event-type") != "chunk":
            return b""
        try:
            event = orjson.loads(base64.b64decode(orjson.loads(message.payload)["bytes"]))
        except (orjson.JSONDecodeError, binascii.Error, KeyError, TypeError):
            return b""
        return self._messages.event(event) if isinstance(event, dict) else b""


def parse_error(status: int, body: bytes) -> tuple[str, Json | None]:
    """AWS's error body (`{"message": ...}`) as a message and an OpenAI error object."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    message = None
    if isinstance(payload, dict):
        message = payload.get("message") or payload.get("Message")
    text = message if isinstance(message, str) and message else f"bad response status code {status}"
    return text, {"type": ERROR_TYPES.get(status, "upstream_error")}


class BedrockAdaptor(AnthropicAdaptor):
    default_base_url = ""
    native_format = ""  # its own framing and body rules: /v1/messages is converted

    def build_request(self, target: Target, body: Outgoing) -> UpstreamRequest:
        only(target.endpoint, CHAT)
        credentials, region = credentials_of(target.key)
        native: Json
        if is_claude(target.model):
            native, model = to_invoke(canonical_body(body), target.model, target.providers)
            action = "invoke-with-response-stream" if target.stream else "invoke"
        else:
            native, model = converse.to_converse(canonical_body(body)), target.model
            action = "converse-stream" if target.stream else "converse"
        base = target.channel.base_url.rstrip("/")
        root = base or f"https://bedrock-runtime.{region}.amazonaws.com"
        # `:` stays as it is: aiohttp would send `%3A` as `:` and the signature would not match
        # the path AWS sees (`/`, in profile ARNs, stays encoded on both sides).
        url = f"{root}/model/{quote(model_id(model, region), safe=':')}/{action}"
        content = orjson.dumps(native)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/vnd.amazon.eventstream" if target.stream else "application/json",
        }
        return UpstreamRequest(url, sign(url, content, headers, credentials, region), content)

    def convert_response(self, target: Target, data: bytes) -> bytes:
        if is_claude(target.model):
            return super().convert_response(target, data)
        response = json_object(data)
        if response is None or "output" not in response:
            return data
        return converse.to_completion(response, target.model)

    def stream_converter(self, target: Target) -> StreamConverter:
        if is_claude(target.model):
            return InvokeStream(target.model)
        return converse.ConverseStream(target.model, EXCEPTION_STATUS, ERROR_TYPES)

    def parse_error(self, status: int, body: bytes) -> tuple[str, Json | None]:
        return parse_error(status, body)
