"""A provider's stream passed through to a client that speaks the provider's format
(Anthropic Messages to an Anthropic channel, Gemini's SSE to a Gemini channel): the client gets
the events as the provider sent them, whole events only (so a keep-alive ping never lands
inside one), and the provider's stream converter still reads them as chat chunks, for the usage
billed, the first-token time and the logged text. Nothing is cut: the provider stops at the
client's own output limit, which the hold covers."""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson

from services.relay.adaptors.base import Adaptor, StreamConverter
from services.relay.adaptors.native import ProviderError
from services.relay.upstream.http import UpstreamFailure
from services.relay.upstream.streaming import SSEProcessor

EVENT_END = re.compile(rb"\r?\n\r?\n")  # SSE events end with a blank line (LF or CRLF)


def _complete(raw: bytes) -> int:
    """Where the last complete event of `raw` ends (0: none is complete)."""
    lf, crlf = raw.rfind(b"\n\n"), raw.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


class NativeStream(SSEProcessor):
    __slots__ = ("_converter", "_error_event", "_raw")

    def __init__(
        self,
        adaptor: Adaptor,
        converter: StreamConverter,
        *,
        error_event: Callable[[str], bytes],
        scrub: Callable[[str], str],
    ) -> None:
        super().__init__(adaptor, include_usage=True, scrub=scrub)
        self._converter = converter
        self._error_event = error_event  # an error event in the format, the message scrubbed
        self._raw = b""

    def feed(self, data: bytes) -> bytes:
        self._raw += data
        end = _complete(self._raw)
        if not end:
            return b""
        whole, self._raw = self._raw[:end], self._raw[end:]
        self._account(whole, last=False)
        return self._relayed(whole)

    def finish(self) -> bytes:
        rest, self._raw = self._raw, b""
        self._account(rest, last=True)
        super().finish()
        return self._relayed(rest) if rest.strip() else b""

    def _account(self, data: bytes, *, last: bool) -> None:
        """The events as chat chunks into the accumulator; an error event before anything
        went out fails the attempt (another channel may answer)."""
        try:
            frames = self._converter.feed(data) if data else b""
            if last:
                frames += self._converter.finish()
        except ProviderError as exc:
            raise UpstreamFailure("status", exc.status, exc.message, error=exc.error) from None
        if frames:
            super().feed(frames)

    def _relayed(self, whole: bytes) -> bytes:
        """The events for the client: as they came, but an error event's message scrubbed of
        the channel's keys and addresses (upstream errors may quote them)."""
        if b"error" not in whole:
            return whole
        events = EVENT_END.split(whole)
        return b"".join(self._event(event) for event in events if event.strip())

    def _event(self, event: bytes) -> bytes:
        if b"error" not in event:
            return event + b"\n\n"
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            try:
                data = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                continue
            # Anthropic's {"type": "error", "error": {...}}, Google's {"error": {...}}
            error = data.get("error") if isinstance(data, dict) else None
            if isinstance(error, dict):
                message = error.get("message")
                return self._error_event(self._scrub(str(message or "upstream error")))
        return event + b"\n\n"
