"""A provider's stream passed through to a client of the same format (pipeline/native_stream.py)."""

from __future__ import annotations

import orjson
import pytest

from services.relay.adaptors.anthropic import AnthropicAdaptor, MessageStream
from services.relay.ingress.anthropic import AnthropicEgress
from services.relay.pipeline.native_stream import NativeStream
from services.relay.upstream.http import UpstreamFailure

KEY = "sk-ant-secret"


def event(data: dict[str, object]) -> bytes:
    return f"event: {data['type']}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"


START = event(
    {
        "type": "message_start",
        "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 12, "output_tokens": 1}},
    }
)
TEXT = event(
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}
)
DELTA = event(
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}
)
STOP = event({"type": "message_stop"})


def stream() -> NativeStream:
    adaptor = AnthropicAdaptor()
    egress = AnthropicEgress(model="m", thinking=False, stop_sequences=[])
    return NativeStream(
        adaptor,
        MessageStream("m"),
        error_event=lambda message: egress.error_event(502, message, "req-1"),
        scrub=lambda text: text.replace(KEY, "[key]"),
    )


def test_whole_events_pass_through_as_they_came_and_usage_is_read() -> None:
    processor = stream()
    body = START + TEXT + DELTA + STOP
    out = b""
    for cut in range(0, len(body), 7):  # any chunking of the upstream bytes
        out += processor.feed(body[cut : cut + 7])
        assert out.endswith(b"\n\n") or not out  # never half an event
    out += processor.finish()

    assert out == body
    assert processor.acc.usage is not None
    assert (processor.acc.usage.prompt_tokens, processor.acc.usage.completion_tokens) == (12, 3)
    assert processor.acc.text == "hi"


def test_an_error_before_any_output_fails_the_attempt() -> None:
    error = event({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    with pytest.raises(UpstreamFailure) as failed:
        stream().feed(error)
    assert failed.value.status == 529


def test_an_error_event_mid_stream_is_relayed_with_the_key_scrubbed() -> None:
    processor = stream()
    error = event({"type": "error", "error": {"type": "api_error", "message": f"bad {KEY}"}})

    out = processor.feed(START + TEXT + error)

    assert out.startswith(START + TEXT)
    assert KEY.encode() not in out
    assert b"bad [key]" in out
    assert b"event: error" in out
