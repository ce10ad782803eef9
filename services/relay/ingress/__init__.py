"""Client wire formats other than OpenAI's, translated at the relay's edge.

An ingress format parses its own request body into the canonical request (an OpenAI chat
request in a `ClientRequest`) and renders errors in its own shape; the per-request `Egress` it
attaches to the request turns the canonical answer (a chat completion, a chat stream) back into
the client's format. OpenAI requests carry no egress, so their path does no extra work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from starlette.responses import Response

from services.relay.adaptors.base import Json, UsageCounts
from services.relay.errors import RelayError

if TYPE_CHECKING:
    from starlette.requests import Request

    from services.relay.auth import ParsedKey
    from services.relay.incoming import ClientRequest


class StreamEgress(Protocol):
    """Turns one stream's canonical chat chunks into the client's frames."""

    def chunk(self, chunk: Json) -> bytes:
        """Frames for one upstream chunk (after usage accounting)."""
        ...

    def end(self, usage: UsageCounts, *, cut: bool) -> bytes:
        """The closing frames: `cut` when the stream stopped at the hold's output cap."""
        ...


class Egress(Protocol):
    """One request's way back to its client's format."""

    done_frame: bytes  # what ends a stream after `end` (OpenAI's `[DONE]` has no twin)
    ping_frame: bytes  # the keep-alive frame of the format
    wait_frame: bytes  # what a pseudo-stream sends while the non-stream call runs
    media_type: str  # the stream's content type

    def reply(self, reply: Json, usage: UsageCounts) -> bytes:
        """A non-stream chat completion as the format's JSON body."""
        ...

    def replay(self, data: bytes) -> bytes:
        """A body `reply` made, as stream frames (pseudo-streams)."""
        ...

    def stream(self, prompt_tokens: int) -> StreamEgress:
        """A translator for one stream (`prompt_tokens`: the local count, for its header)."""
        ...

    def error(
        self, status: int, message: str, request_id: str, headers: dict[str, str] | None
    ) -> Response:
        """An error answer in the format's shape."""
        ...

    def error_event(self, status: int, message: str, request_id: str) -> bytes:
        """An error frame, once a stream's headers went out."""
        ...


@dataclass(frozen=True, slots=True)
class Ingress:
    """A client format: its metrics name, its parser, its error shape and, when it has its own
    key header (Gemini's `x-goog-api-key`), its key reader."""

    name: str
    parse: Callable[[bytes], ClientRequest]
    error_response: Callable[[RelayError, str], Response]
    read_key: Callable[[Request], ParsedKey] | None = None


def first_choice(reply: Json) -> Json:
    """A chat completion's (or chunk's) first choice, or {} (the formats egress one answer)."""
    choices = reply.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def reply_text(value: Any) -> str:
    """A chat message's content as text (some upstreams answer with content parts)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            p["text"] for p in value if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


@dataclass(frozen=True, slots=True)
class CallDelta:
    """One streamed OpenAI tool-call delta: the call's position, the id it carries ("" when
    none), the function name and a piece of the arguments ("" when absent)."""

    position: Any
    call_id: str
    name: str
    arguments: str

    def replaces(self, known_id: str) -> bool:
        """Whether this delta opens a new call at a position that already has one (`known_id`):
        a new id at the same index is a new call (some upstreams number parallel calls all 0);
        an id repeated on every delta is the same call. A new index is always a new call."""
        return bool(self.call_id and self.call_id != known_id)


def call_deltas(calls: list[Any]) -> Iterator[CallDelta]:
    """The tool-call deltas of a chunk's `delta.tool_calls`, malformed entries left out."""
    for call in calls:
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        call_id, arguments = call.get("id"), function.get("arguments")
        yield CallDelta(
            position=call.get("index", 0),
            call_id=call_id if isinstance(call_id, str) else "",
            name=str(function.get("name") or ""),
            arguments=arguments if isinstance(arguments, str) else "",
        )
