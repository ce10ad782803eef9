"""Cohere (34) conversion rules: the conversation's shape, the safety mode, the stream's events
and refusals, without a server."""

from __future__ import annotations

import orjson
import pytest

from services.relay.adaptors.cohere import ChatStream, to_chat
from services.relay.adaptors.native import ProviderError
from services.relay.errors import RelayError
from services.relay.settings import load_settings
from services.shared.config import ConfigError

HI = [{"role": "user", "content": "hi"}]
ENV = {"NATS_URL": "nats://127.0.0.1:4222", "INTERNAL_TOKEN_RELAY": "r" * 32}


def test_the_safety_mode_is_sent_unless_none_and_a_bad_one_stops_the_relay() -> None:
    assert to_chat({"messages": HI}, "m", "STRICT", False)["safety_mode"] == "STRICT"
    assert "safety_mode" not in to_chat({"messages": HI}, "m", "NONE", False)
    assert (
        load_settings({**ENV, "COHERE_SAFETY_SETTING": "contextual"}).cohere_safety == "CONTEXTUAL"
    )
    with pytest.raises(ConfigError, match="COHERE_SAFETY_SETTING"):
        load_settings({**ENV, "COHERE_SAFETY_SETTING": "lenient"})


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([], "non-empty"),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "last"),
        ([{"role": "tool", "content": "x"}, *HI], "role 'tool'"),
    ],
)
def test_conversations_cohere_cannot_take_are_refused(messages: list[object], problem: str) -> None:
    with pytest.raises(RelayError, match=problem):
        to_chat({"messages": messages}, "m", "NONE", False)


def test_an_error_before_any_text_fails_the_attempt_and_after_text_ends_the_stream() -> None:
    first = ChatStream("m")
    with pytest.raises(ProviderError):
        first.feed(b'{"message": "internal error"}\n')
    later = ChatStream("m")
    text = orjson.dumps({"event_type": "text-generation", "text": "partial"})
    frames = later.feed(text + b"\n" + b'{"event_type": "stream-end", "finish_reason": "ERROR"}')
    frames += later.finish()
    assert b"partial" in frames and b'"error"' in frames
