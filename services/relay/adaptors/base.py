"""The adaptor interface: how a channel type builds its upstream request and reads the answer.

An adaptor turns the shaped OpenAI-format request into the upstream's URL, headers and body
(request conversion), turns a non-stream answer and every stream chunk back into OpenAI format
(response and stream conversion) and extracts usage. OpenAI-compatible types override only the
URL and headers; formats such as Anthropic or Gemini override the conversions too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from services.relay.endpoints import Endpoint
from services.relay.routing import ChannelInfo

Json = dict[str, Any]


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


class Adaptor(Protocol):
    supports_stream_options: bool

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
