"""The adaptor interface: how a channel type builds its upstream request and reads the answer.

An adaptor turns the shaped OpenAI-format request into the upstream's URL, headers and body
(request conversion), turns a non-stream answer and every stream chunk back into OpenAI format
(response and stream conversion) and extracts usage. OpenAI-compatible types override only the
URL and headers; formats such as Anthropic or Gemini override the conversions too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson

from services.relay.endpoints import Endpoint
from services.relay.options import DEFAULT_PROVIDER_OPTIONS, ProviderOptions
from services.relay.routing.table import ChannelInfo

Json = dict[str, Any]
# (status, error body) -> (message, the error object in OpenAI's shape, when there is one)
ErrorReader = Callable[[int, bytes], tuple[str, Json | None]]


@dataclass(slots=True)
class UsageCounts:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    image_count: int = 0
    characters: int = 0
    audio_seconds: float = 0.0
    clamped: bool = False  # some reported count was odd (negative, huge, not an int)
    cache_creation_tokens: int = 0  # cache writes (Anthropic), billed on top of prompt_tokens
    audio_input_tokens: int = 0  # part of prompt_tokens heard as audio (audio ratio)
    audio_output_tokens: int = 0  # part of completion_tokens spoken as audio


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class FormFile:
    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class Outgoing:
    """The shaped client request: a JSON body, the raw client bytes (pass-through) or a form."""

    json: Json | None = None
    raw: bytes | None = None
    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[FormFile] = field(default_factory=list)

    @property
    def multipart(self) -> bool:
        return self.json is None and self.raw is None


@dataclass(slots=True)
class StreamAccumulator:
    """What a stream delivered so far, enough to count usage when the upstream gives none."""

    text_chars: int = 0
    has_text: bool = False  # some non-whitespace text was delivered
    tool_calls: int = 0
    usage: UsageCounts | None = None
    chunks: int = 0
    first_chunk_meta: Json | None = None  # id / created / model, for a synthetic usage chunk
    parts: list[str] = field(default_factory=list)  # delivered text, for a local count

    def add_text(self, text: str) -> None:
        self.text_chars += len(text)
        self.parts.append(text)
        if not self.has_text and not text.isspace():
            self.has_text = True

    @property
    def text(self) -> str:
        return "".join(self.parts)


@dataclass(frozen=True, slots=True)
class Target:
    """What one upstream attempt sends: the channel, its key and the upstream model name."""

    channel: ChannelInfo
    key: str
    model: str
    endpoint: Endpoint
    stream: bool
    providers: ProviderOptions = DEFAULT_PROVIDER_OPTIONS  # Claude and Gemini settings
    token: str = ""  # the access token the key was exchanged for (`needs_token` adaptors)
    native: bool = False  # the body is already in the provider's format (a passthrough)
    native_headers: Mapping[str, str] = field(default_factory=dict)  # the client's, passed on


class StreamConverter(Protocol):
    """A provider's own stream format as OpenAI chat chunk frames (`data: {...}` lines)."""

    def feed(self, data: bytes) -> bytes:
        """Frames for the next bytes of the provider's stream."""
        ...

    def finish(self) -> bytes:
        """Frames for what the stream left without a final newline."""
        ...


class Adaptor(Protocol):
    supports_stream_options: bool
    native_format: str  # a client format the provider speaks itself ("": none)
    transport: str  # "http", or "websocket" for a provider whose chat API is one (Spark)
    polls: bool  # some answers are async tasks to poll until done (`poll`; Ali's images)
    needs_token: bool  # the key is exchanged for an access token before each request

    async def access_token(
        self, key: str, base_url: str, http: aiohttp.ClientSession, proxy: str
    ) -> str:
        """The access token for `key` (only called when `needs_token`): `base_url` is the
        channel's, `http` and `proxy` the way to reach it."""
        ...

    async def poll(
        self, target: Target, data: bytes, http: aiohttp.ClientSession, proxy: str
    ) -> bytes:
        """The finished answer of a task `data` started (only called when `polls`)."""
        ...

    def stream_converter(self, target: Target) -> StreamConverter | None:
        """The converter of the provider's stream, or None when it streams OpenAI chunks."""
        ...

    def parse_error(self, status: int, body: bytes) -> tuple[str, Json | None]:
        """The message and the OpenAI error object of a non-2xx answer."""
        ...

    def build_request(self, target: Target, body: Outgoing) -> UpstreamRequest:
        """The upstream URL, headers and body."""
        ...

    def convert_response(self, target: Target, data: bytes) -> bytes:
        """A non-stream 2xx answer in OpenAI format."""
        ...

    def parse_usage(self, payload: Json) -> UsageCounts | None:
        """Usage of a non-stream reply, or None when the upstream gave none."""
        ...

    def reply_text(self, payload: Json) -> tuple[str, int]:
        """Text and tool-call count of a non-stream reply (for a local usage count)."""
        ...

    def reply_is_empty(self, payload: Json) -> bool:
        """True when a non-stream text reply carries no text and no tool call (not billed)."""
        ...

    def accumulate_chunk(self, chunk: Json, acc: StreamAccumulator) -> bool:
        """Record one stream chunk; True when it is a usage-only chunk (no choices)."""
        ...


def parse_error_body(status: int, body: bytes) -> tuple[str, dict[str, Any] | None]:
    """The upstream's error message and its OpenAI error object (if it sent one)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"bad response status code {status}", None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        message = error.get("message")
        return (
            message
            if isinstance(message, str) and message
            else f"bad response status code {status}"
        ), error
    if isinstance(error, str) and error:
        return error, None
    return f"bad response status code {status}", None
