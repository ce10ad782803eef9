"""The Anthropic adaptor's conversions: canonical chat -> Messages, Message -> completion, the
event stream -> OpenAI chunks (bytes split anywhere), usage with cache reads and writes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.relay.adaptors.anthropic import (
    AnthropicAdaptor,
    MessageStream,
    to_messages,
    usage_counts,
)
from services.relay.adaptors.base import Outgoing, StreamAccumulator, Target
from services.relay.adaptors.native import ProviderError
from services.relay.endpoints import CHAT
from services.relay.routing.table import ChannelInfo


def target(base_url: str = "", *, stream: bool = False) -> Target:
    channel = ChannelInfo(
        id=1, type=14, name="c", base_url=base_url, status=1, priority=0, weight=1, keys=()
    )
    return Target(channel, "sk-ant", "claude-x", CHAT, stream)


def event(kind: str, **data: Any) -> bytes:
    return f"event: {kind}\n".encode() + b"data: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


def chunks_of(frames: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in frames.split(b"\n") if line.startswith(b"data: ")]


def test_request_url_headers_and_no_pass_through_bytes() -> None:
    adaptor = AnthropicAdaptor()
    raw = orjson.dumps({"model": "x", "messages": [{"role": "user", "content": "hi"}]})
    request = adaptor.build_request(target(), Outgoing(raw=raw))
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant"
    assert request.headers["anthropic-version"] == "2023-06-01"
    body = orjson.loads(request.body)
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert body["max_tokens"] == 8192 and "stream" not in body
    root = adaptor.build_request(target("https://gw.example/anthropic/"), Outgoing(raw=raw))
    assert root.url == "https://gw.example/anthropic/messages"


def test_consecutive_turns_merge_and_tool_choice_maps() -> None:
    native = to_messages(
        {
            "messages": [
                {"role": "system", "content": "a"},
                {"role": "developer", "content": [{"type": "text", "text": "b"}]},
                {"role": "user", "content": "one"},
                {"role": "user", "content": "two"},
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "parallel_tool_calls": False,
            "stop": "END",
            "max_completion_tokens": 77,
        },
        "claude-x",
    )
    assert native["system"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert native["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        }
    ]
    assert native["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    assert native["tool_choice"] == {"type": "tool", "name": "f", "disable_parallel_tool_use": True}
    assert native["stop_sequences"] == ["END"] and native["max_tokens"] == 77


def test_thinking_suffix_raises_a_small_max_tokens() -> None:
    native = to_messages({"messages": [], "max_tokens": 100}, "claude-x-thinking")
    assert native["model"] == "claude-x"
    assert native["max_tokens"] == 1280
    assert native["thinking"] == {"type": "enabled", "budget_tokens": 1024}


def test_stream_split_anywhere_gives_the_same_chunks() -> None:
    start = {
        "id": "msg_1",
        "model": "claude-x",
        "usage": {"input_tokens": 5, "cache_read_input_tokens": 7, "output_tokens": 1},
    }
    tool = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    body = b"".join(
        [
            event("message_start", message=start),
            event("ping"),
            event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
            event("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hé"}),
            event("content_block_stop", index=0),
            event("content_block_start", index=1, content_block=tool),
            event(
                "content_block_delta",
                index=1,
                delta={"type": "input_json_delta", "partial_json": '{"a":'},
            ),
            event(
                "content_block_delta",
                index=1,
                delta={"type": "input_json_delta", "partial_json": "1}"},
            ),
            event("content_block_stop", index=1),
            event("message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 9}),
            event("message_stop"),
        ]
    )
    whole = MessageStream("claude-x")
    expected = chunks_of(whole.feed(body) + whole.finish())
    for size in (1, 7, 50):
        split = MessageStream("claude-x")
        frames = b"".join(split.feed(body[i : i + size]) for i in range(0, len(body), size))
        got = chunks_of(frames + split.finish())
        assert [c["choices"] for c in got] == [c["choices"] for c in expected]
    deltas = [c["choices"][0]["delta"] for c in expected if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "Hé"}
    assert deltas[2]["tool_calls"][0]["id"] == "toolu_1"
    assert [d["tool_calls"][0]["function"]["arguments"] for d in deltas[3:5]] == ['{"a":', "1}"]
    assert expected[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert expected[-1]["usage"]["prompt_tokens"] == 12
    assert expected[-1]["usage"]["completion_tokens"] == 9
    acc = StreamAccumulator()
    adaptor = AnthropicAdaptor()
    for chunk in expected:
        adaptor.accumulate_chunk(chunk, acc)
    assert acc.usage is not None and acc.usage.cached_tokens == 7 and acc.tool_calls == 1


def test_error_event_first_fails_the_attempt_later_is_an_error_chunk() -> None:
    error = {"type": "overloaded_error", "message": "Overloaded"}
    with pytest.raises(ProviderError) as caught:
        MessageStream("m").feed(event("error", error=error))
    assert caught.value.status == 529
    stream = MessageStream("m")
    stream.feed(event("message_start", message={"id": "msg", "usage": {}}))
    [chunk] = chunks_of(stream.feed(event("error", error=error)))
    assert chunk["error"]["type"] == "overloaded_error"


def test_cache_writes_are_billed_apart_from_the_prompt() -> None:
    usage = usage_counts(
        {
            "prompt_tokens": 1500,
            "completion_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 1000, "cached_creation_tokens": 400},
        }
    )
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_creation_tokens) == (
        1100,
        1000,
        400,
    )


def test_non_message_body_is_left_alone() -> None:
    assert AnthropicAdaptor().convert_response(target(), b'{"odd": 1}') == b'{"odd": 1}'
