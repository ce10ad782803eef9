"""The adaptor interface: how a channel type builds its upstream request and reports usage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from services.relay.routing import ChannelInfo

Json = dict[str, Any]


@dataclass(slots=True)
class UsageCounts:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class StreamAccumulator:
    """What a stream delivered so far, enough to estimate usage when the upstream gives none."""

    text_chars: int = 0
    has_text: bool = False  # some non-whitespace text was delivered
    tool_calls: int = 0
    usage: UsageCounts | None = None
    chunks: int = 0
    first_chunk_meta: Json | None = None  # id / created / model, for a synthetic usage chunk


class Adaptor(Protocol):
    supports_stream_options: bool

    def build_request(
        self, channel: ChannelInfo, key: str, body: Json, *, stream: bool
    ) -> UpstreamRequest:
        """The upstream URL, headers and body for `body` (already model-mapped)."""
        ...

    def parse_usage(self, payload: Json) -> UsageCounts | None:
        """Usage of a non-stream reply, or None when the upstream gave none."""
        ...

    def reply_chars(self, payload: Json) -> int:
        """Characters of text in a non-stream reply (for a local usage estimate)."""
        ...

    def reply_is_empty(self, payload: Json) -> bool:
        """True when a non-stream reply carries no text and no tool call (not billed)."""
        ...

    def accumulate_chunk(self, chunk: Json, acc: StreamAccumulator) -> bool:
        """Record one stream chunk; True when it is a usage-only chunk (no choices)."""
        ...
